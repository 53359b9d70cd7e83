"""The profiling wing: 68-point faces fitted with a 3D morphable model (fit.py) and turned to larger yaws, to make
large-pose training sets in the 300W-LP layout from any 68-point set. NumPy and OpenCV only."""
