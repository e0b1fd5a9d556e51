"""Models: a ``transformers`` encoder, task heads, and the LightningModule that trains them."""
