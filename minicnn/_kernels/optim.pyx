"""The SGD update (momentum, dampening, Nesterov, weight decay) as one pass over a parameter.

Computes:  for each weight w[i] and its gradient g[i], PyTorch's rule:
               d = g + wd*w
               buf = d (the first step) or momentum*buf + (1 - dampening)*d
               d = d + momentum*buf (Nesterov) or buf
               w = w - lr*d
           (with momentum 0, no buffer: d = g + wd*w).
Layout:    w, g and buf flat (C-contiguous), element by element.
Threads:   prange over the elements in equal contiguous blocks (schedule static).
Sum order: each element's update reads only that element, in the fixed order above, so any
           thread count gives the same bits.
Why:       NumPy's version makes five passes over memory (the weight decay, the two momentum
           updates, the scaled step, the subtraction), each with a temporary; here each
           element is read and written once.
Must agree with the NumPy lines of minicnn.optim.SGD._update, bit for bit: each line below
is one of those NumPy expressions, in the same order and precision. (minicnn.reference has
no optimizer: an update is not an operation of the network.)
"""
from cython cimport floating
from cython.parallel cimport prange


def sgd_update(floating[::1] w,            # INOUT the weights
               const floating[::1] g,      # IN    their gradient
               floating[::1] buf,          # INOUT the momentum buffer (unused without momentum)
               double lr, double momentum, double dampening, double weight_decay,
               bint nesterov, bint first, int num_threads):
    """d = g + wd*w; buf = d (first step) or momentum*buf + (1 - dampening)*d;
    d = d + momentum*buf (Nesterov) or buf; w -= lr*d. With momentum 0, d = g + wd*w."""
    cdef Py_ssize_t i
    cdef floating d
    cdef floating lr_ = <floating>lr, m = <floating>momentum, wd = <floating>weight_decay
    cdef floating keep = <floating>(1.0 - dampening)
    cdef bint decay = weight_decay != 0, has_momentum = momentum != 0
    with nogil:
        for i in prange(w.shape[0], schedule="static", num_threads=num_threads):
            d = g[i]
            if decay:
                d = d + wd * w[i]
            if has_momentum:
                if first:
                    buf[i] = d
                else:
                    buf[i] = buf[i] * m + keep * d
                if nesterov:
                    d = d + m * buf[i]
                else:
                    d = buf[i]
            w[i] = w[i] - lr_ * d
