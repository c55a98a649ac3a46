"""What the model sees of the tool: its arguments, and the advice it reads after a call."""
