"""A physical clear-sky model to fit an unclipped sky to: its shape and colour, and the sun it implies.

Three published models, used for what each does well:
- Preetham, Shirley and Smits, "A Practical Analytic Model for Daylight" (SIGGRAPH 1999): the Perez
  distribution of sky luminance and chromaticity over the sky for a turbidity T and a sun position
  (coefficients of their appendix). We fit T and the sun's direction to the image's sky with it.
- Bird and Hulstrom, "A Simplified Clear Sky Model for Direct and Diffuse Insolation" (SERI/TR-642-761,
  1981): broadband direct and diffuse horizontal irradiance for an air mass and aerosol optical depth; it
  gives the sun's share of the light for the fitted T, which the clipped image cannot show.
- Bird and Riordan (1986) spectral transmittances (Rayleigh, aerosol with Angstrom exponent 1.3, ozone)
  at each channel's effective wavelength give the sun's colour; Preetham's beta(T) links T to aerosols.
Directions are world-space unit vectors (Blender's: +Z up); pure numpy.
"""

import numpy as np

# Perez coefficients (A..E) as a*T + b, for luminance Y and chromaticities x, y (Preetham 1999, A.2).
PEREZ = {
    "Y": ((0.1787, -1.4630), (-0.3554, 0.4275), (-0.0227, 5.3251), (0.1206, -2.5771), (-0.0670, 0.3703)),
    "x": ((-0.0193, -0.2592), (-0.0665, 0.0008), (-0.0004, 0.2125), (-0.0641, -0.8989), (-0.0033, 0.0452)),
    "y": ((-0.0167, -0.2608), (-0.0950, 0.0092), (-0.0079, 0.2102), (-0.0441, -1.6537), (-0.0109, 0.0529)),
}
# Zenith chromaticity: [T^2, T, 1] @ M @ [ts^3, ts^2, ts, 1] with ts the sun's zenith angle (Preetham A.2).
ZENITH_X = np.array(
    [
        [0.00166, -0.00375, 0.00209, 0.0],
        [-0.02903, 0.06377, -0.03202, 0.00394],
        [0.11693, -0.21196, 0.06052, 0.25886],
    ]
)
ZENITH_Y = np.array(
    [
        [0.00275, -0.00610, 0.00317, 0.0],
        [-0.04214, 0.08970, -0.04153, 0.00516],
        [0.15346, -0.26756, 0.06670, 0.26688],
    ]
)
# CIE XYZ -> linear Rec.709 (D65), and back.
XYZ_TO_RGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
RGB_TO_XYZ = np.linalg.inv(XYZ_TO_RGB)
# Effective wavelengths (um) of the R, G and B channels, and ozone absorption there (1/cm, Bird-Riordan).
WAVELENGTHS = np.array([0.610, 0.550, 0.465])
OZONE_ABSORPTION = np.array([0.120, 0.092, 0.010])
OZONE_CM = 0.35
SUN_TEMPERATURE = 5778.0  # K, the sun above the atmosphere
TURBIDITIES = np.linspace(2.0, 10.0, 33)  # Preetham's fit does not hold below T = 2


def perez(cos_theta: np.ndarray, gamma: np.ndarray, turbidity: float, which: str) -> np.ndarray:
    """Perez's F(theta, gamma): relative sky value at zenith angle theta and angle gamma from the sun."""
    a, b, c, d, e = (s * turbidity + o for s, o in PEREZ[which])
    return (1.0 + a * np.exp(b / np.maximum(cos_theta, 0.01))) * (
        1.0 + c * np.exp(d * gamma) + e * np.cos(gamma) ** 2
    )


def zenith_chromaticity(turbidity: float, sun_zenith: float) -> tuple[float, float]:
    t = np.array([turbidity**2, turbidity, 1.0])
    s = np.array([sun_zenith**3, sun_zenith**2, sun_zenith, 1.0])
    return float(t @ ZENITH_X @ s), float(t @ ZENITH_Y @ s)


def sky_xyy(directions: np.ndarray, sun: np.ndarray, turbidity: float) -> np.ndarray:
    """Preetham's sky at `directions` (Nx3) for the sun direction `sun`: x, y and relative luminance Y
    (1 at the zenith), shape Nx3."""
    cos_theta = directions[:, 2]
    gamma = np.arccos(np.clip(directions @ sun, -1.0, 1.0))
    sun_zenith = float(np.arccos(np.clip(sun[2], -1.0, 1.0)))
    zenith = np.array([[1.0]]), np.array([[sun_zenith]])
    out = np.empty((len(directions), 3))
    xz, yz = zenith_chromaticity(turbidity, sun_zenith)
    for k, (which, at_zenith) in enumerate((("x", xz), ("y", yz), ("Y", 1.0))):
        out[:, k] = (
            at_zenith * perez(cos_theta, gamma, turbidity, which) / perez(*zenith, turbidity, which)[0, 0]
        )
    return out


def xyy_to_rgb(xyy: np.ndarray) -> np.ndarray:
    x, y, big_y = xyy[..., 0], xyy[..., 1], xyy[..., 2]
    y = np.maximum(y, 1e-6)
    xyz = np.stack([x * big_y / y, big_y, (1.0 - x - y) * big_y / y], axis=-1)
    return xyz @ XYZ_TO_RGB.T


def rgb_to_xyy(rgb: np.ndarray) -> np.ndarray:
    xyz = np.asarray(rgb, dtype=np.float64) @ RGB_TO_XYZ.T
    total = np.maximum(xyz.sum(axis=-1), 1e-12)
    return np.stack([xyz[..., 0] / total, xyz[..., 1] / total, xyz[..., 1]], axis=-1)


def fit_turbidity(
    directions: np.ndarray, observed_rgb: np.ndarray, weights: np.ndarray, sun: np.ndarray
) -> float:
    """The turbidity whose Preetham sky best matches the observed unclipped sky (Nx3 linear RGB) in shape
    (log luminance, any exposure) and colour (chromaticity), with the sun at `sun`."""
    # Every other sample: the fit's shape is smooth, and it runs 33 times.
    directions, observed_rgb, weights = directions[::2], observed_rgb[::2], weights[::2]
    observed = rgb_to_xyy(observed_rgb)
    log_y = np.log(np.maximum(observed[:, 2], 1e-9))
    w = weights / weights.sum()
    errors = []
    for turbidity in TURBIDITIES:
        model = sky_xyy(directions, sun, turbidity)
        residual = log_y - np.log(np.maximum(model[:, 2], 1e-9))
        shape = float(w @ (residual - w @ residual) ** 2)
        colour = float(w @ ((observed[:, 0] - model[:, 0]) ** 2 + (observed[:, 1] - model[:, 1]) ** 2))
        errors.append(shape + 100.0 * colour)  # 0.01 in chromaticity weighs as 10% in luminance
    return float(TURBIDITIES[int(np.argmin(errors))])


def air_mass(elevation: float) -> float:
    """Kasten's relative optical air mass for a sun `elevation` radians above the horizon."""
    zenith = 90.0 - np.degrees(max(elevation, np.radians(0.5)))
    return float(1.0 / (np.cos(np.radians(zenith)) + 0.15 * (93.885 - zenith) ** -1.25))


def aerosol_beta(turbidity: float) -> float:
    """Angstrom's turbidity coefficient for Preetham's turbidity T (Preetham 1999, A.3)."""
    return max(0.04608 * turbidity - 0.04586, 0.0)


def sun_share(elevation: float, turbidity: float) -> float:
    """The direct sun's share of clear-sky horizontal irradiance (Bird and Hulstrom 1981, broadband, no
    water vapour: Blender's physical sky has none)."""
    if elevation <= 0:
        return 0.0
    m = air_mass(elevation)
    cos_z = float(np.sin(elevation))
    rayleigh = np.exp(-0.0903 * m**0.84 * (1.0 + m - m**1.01))
    xo = OZONE_CM * m
    ozone = 1 - 0.1611 * xo * (1 + 139.48 * xo) ** -0.3035 - 0.002715 * xo / (1 + 0.044 * xo + 0.0003 * xo**2)
    gases = np.exp(-0.0127 * m**0.26)
    beta = aerosol_beta(turbidity)
    tau = 0.2758 * beta * 0.38**-1.3 + 0.35 * beta * 0.5**-1.3
    aerosol = np.exp(-(tau**0.873) * (1.0 + tau - tau**0.7088) * m**0.9108)
    absorbed = 1.0 - 0.1 * (1.0 - m + m**1.06) * (1.0 - aerosol)
    scattered = aerosol / absorbed
    direct = 0.9662 * rayleigh * ozone * gases * aerosol * cos_z
    diffuse = 0.79 * cos_z * ozone * gases * absorbed * (0.5 * (1 - rayleigh) + 0.84 * (1 - scattered))
    diffuse /= 1.0 - m + m**1.02
    return float(direct / (direct + diffuse))


def planck_rgb(temperature: float) -> np.ndarray:
    """Linear Rec.709 colour (luminance 1) of a black body, from Kim et al.'s fit of the Planckian locus."""
    t = float(np.clip(temperature, 1667.0, 25000.0))
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return xyy_to_rgb(np.array([x, y, 1.0]))


def sun_colour(elevation: float, turbidity: float) -> np.ndarray:
    """Linear Rec.709 colour (luminance 1) of the sun seen through the atmosphere: the sun above it
    attenuated per channel by Rayleigh scattering, aerosols (beta(T), Angstrom 1.3) and ozone."""
    m = air_mass(elevation)
    lam = WAVELENGTHS
    rayleigh = m / (lam**4 * (115.6406 - 1.335 / lam**2))
    aerosol = aerosol_beta(turbidity) * lam**-1.3 * m
    ozone = OZONE_ABSORPTION * OZONE_CM * m
    rgb = planck_rgb(SUN_TEMPERATURE) * np.exp(-(rayleigh + aerosol + ozone))
    return rgb / float(rgb @ np.array([0.2126, 0.7152, 0.0722]))


def colour_temperature(rgb: np.ndarray) -> float:
    """Correlated colour temperature (K) of a linear Rec.709 colour (McCamy's formula)."""
    x, y, _ = rgb_to_xyy(np.asarray(rgb, dtype=np.float64))
    n = (x - 0.3320) / (0.1858 - y)
    return float(np.clip(449.0 * n**3 + 3525.0 * n**2 + 6823.3 * n + 5520.33, 1000.0, 40000.0))
