"""Dataset preparation: one module per source, each writing the prepared-dataset format."""
