"""Job bodies, one module per concern; ``netroom.jobs`` registers them under their task names."""
