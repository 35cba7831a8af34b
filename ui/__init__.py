"""The Gradio app: one module per tab, handlers that call `ffclr` and `store` (no ML logic here)."""
