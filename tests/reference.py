"""Independent reference computations (NumPy/SciPy) that the tests hold MediVision's numbers against."""

import numpy as np
from scipy.ndimage import gaussian_filter


def ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Wang et al.'s SSIM map, Gaussian window sigma 1.5 truncated at 11x11, borders mirrored (as torch's
    'reflect'); x, y float images in [0, 1]."""
    blur = lambda a: gaussian_filter(a, 1.5, truncate=3.5, mode="mirror")  # noqa: E731
    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
