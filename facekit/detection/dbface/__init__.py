"""DBFace (and every CenterNet-style single-shot detector): trainer with validation AP, export with the decoding
inside the graph."""
