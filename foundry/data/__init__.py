"""What a persona is made of: records (schemas), contracts and topics, corpus files and items,
validation and splits, the Faultline import, text normalisation, chat framing, retrieval, the
attribution classifiers fitted on the corpora, and the data's DVC versions (`versions`, `dvc_repo`).

May import only the common ground (`foundry.config`, `errors`, `logs`, `atomic`, `slugs`) and
stage config sections; every other stage builds on it.
"""
