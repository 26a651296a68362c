"""Slow reference implementations, written to be read, not to be fast.

Each one follows the definition with plain loops; tests compare the kernels with
them on random shapes and options.
"""
import numpy as np

# === padding (owner: pad) ====================================================

# === convolution (owner: conv) ===============================================

# === pooling (owner: pool) ===================================================

# === dense and activations (owner: compose) ==================================
