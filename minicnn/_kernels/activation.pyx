"""ReLU, forward and backward, elementwise over flat arrays.

Computes:  out = max(x, 0); backward, dx = dout where out > 0, else 0 (the derivative is
           taken as 0 at x = 0, as PyTorch does; a NaN in x stays NaN).
Layout:    any array, seen flat (C-contiguous): a function of each value on its own does
           not care about N, C, H and W.
Threads:   prange over the elements, in equal contiguous blocks (schedule static). A pass
           over a large activation is bound by memory, which two cores stream faster than
           NumPy's one; the caller passes num_threads=1 for small arrays, where waking the
           threads would cost more than the work.
Sum order: nothing is summed: each output element comes from one input element, so any
           thread count gives the same bits.
Must agree with minicnn.reference.activation.relu and relu_backward (the same values).
"""
from cython cimport floating
from cython.parallel cimport prange


def relu_forward(const floating[::1] x, floating[::1] out, int num_threads):
    """out = max(x, 0); NaN stays NaN (as np.maximum)."""
    cdef Py_ssize_t i
    cdef floating v
    with nogil:
        for i in prange(x.shape[0], schedule="static", num_threads=num_threads):
            v = x[i]
            out[i] = 0 if v <= 0 else v


def relu_backward(const floating[::1] dout, const floating[::1] out, floating[::1] dx,
                  int num_threads):
    """dx = dout where out > 0, else 0 (PyTorch's rule: NaN in dout where the unit is off
    gives 0)."""
    cdef Py_ssize_t i
    cdef floating d
    with nogil:
        for i in prange(dout.shape[0], schedule="static", num_threads=num_threads):
            d = dout[i]      # loaded unconditionally, so the select below vectorises
            dx[i] = d if out[i] > 0 else 0
