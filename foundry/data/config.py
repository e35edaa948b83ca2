"""Config sections for persona data (`personas:`) and its DVC versioning (`versioning:`) in
foundry.yaml: which personas to use, how corpora are chunked and deduplicated, where DVC pushes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from foundry.slugs import check_slug


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PersonasConfig(_Section):
    include: list[str] = Field(
        default_factory=list, description="Persona slugs to use; empty means every persona found."
    )
    test_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=0.5,
        description="Share of each persona's items (newest documents first) kept for the test "
        "split, besides the documents about held-out topics.",
    )
    validation_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=0.5,
        description="Share of each persona's items (the next newest) that choices are made on.",
    )
    min_split_items: int = Field(
        5, ge=1, description="`foundry validate` warns when a persona's split is smaller."
    )
    min_items: int = Field(
        2,
        ge=2,
        description="Fewest corpus items a trainable persona may have (one train, one test).",
    )
    max_chunk_chars: int = Field(
        1200, ge=200, description="Longest chunk a Markdown or text document is split into."
    )
    min_chunk_chars: int = Field(
        80, ge=0, description="Shorter document paragraphs are joined to the next one."
    )
    near_duplicate_threshold: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="Word 3-gram Jaccard similarity at or above which two items are duplicates.",
    )
    csv_text_column: str = Field(
        "text", description="CSV column holding the text (`content` is also recognised)."
    )

    @field_validator("include")
    @classmethod
    def _slugs(cls, values: list[str]) -> list[str]:
        return [check_slug(v) for v in values]


class VersioningConfig(_Section):
    remote_url: str = Field(
        "",
        description="DVC remote (a folder, s3://, gs://, ...); empty means <cache_dir>/dvc-remote.",
    )
    remote_name: str = Field("local", description="Name of the DVC remote in .dvc/config.")
    push: bool = Field(True, description="Push the data to the remote after each `dvc add`.")
