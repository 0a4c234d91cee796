"""The model quality loop (issue #16): labelled sets, metrics, scenarios, evaluation and a fine-tuned head."""
