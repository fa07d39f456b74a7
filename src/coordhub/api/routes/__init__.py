"""One routes module per noun; each handler parses, calls one core function, and answers."""
