"""Multi-round debates among the personas, through any variant and target, and their measures."""
