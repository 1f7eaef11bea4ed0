"""Synthetic inputs for the post-processing tests: 1/f noise, photo-like crops, skies, lit textures."""

import numpy as np


def periodic_noise(height, width, seed, beta=1.0):
    """'Natural-looking' noise: amplitude ~ 1/f^beta (beta 1 is the statistics of photographs), periodic in
    both axes because it is made by an inverse FFT. Zero mean, unit std."""
    rng = np.random.default_rng(seed)
    frequency = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :])
    frequency[0, 0] = 1.0
    amplitude = frequency**-beta
    amplitude[0, 0] = 0.0
    spectrum = amplitude * (rng.normal(size=frequency.shape) + 1j * rng.normal(size=frequency.shape))
    out = np.fft.irfft2(spectrum, s=(height, width))
    return (out - out.mean()) / out.std()


def photo_crop(height, width, seed=7):
    """A non-periodic crop of the same kind of noise: the middle of a field 1.37x larger."""
    big = periodic_noise(int(height * 1.37), int(width * 1.37), seed)
    y0, x0 = int(height * 0.21), int(width * 0.17)
    return big[y0 : y0 + height, x0 : x0 + width]


def _directions(width):
    height = width // 2
    el = (0.5 - (np.arange(height) + 0.5) / height) * np.pi
    az = (np.arange(width) + 0.5) / width * 2 * np.pi
    el, az = np.meshgrid(el, az, indexing="ij")
    return el, az, np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)


def _unit(elevation_deg, azimuth_deg):
    el, az = np.radians(elevation_deg), np.radians(azimuth_deg)
    return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


def sunny_sky(width, sun_elevation=45.0, sun_azimuth=120.0, seed=1):
    """A clipped sunny sky: blue gradient, light clouds, a white glare blob around the sun, brown ground."""
    el, _, direction = _directions(width)
    t = np.clip(el / (np.pi / 2), 0, 1)[..., None]
    sky = np.array([0.72, 0.8, 0.9]) * (1 - t) + np.array([0.28, 0.48, 0.85]) * t
    sky = sky + np.clip(periodic_noise(*el.shape, seed), 0, None)[..., None] * 0.06
    gamma = np.degrees(np.arccos(np.clip(direction @ _unit(sun_elevation, sun_azimuth), -1, 1)))[..., None]
    glow = np.exp(-np.maximum(gamma - 3.0, 0) / 6.0)
    sky = sky * (1 - glow) + 1.05 * glow
    ground = np.array([0.36, 0.31, 0.22]) * (1 + 0.25 * periodic_noise(*el.shape, seed + 1)[..., None])
    return np.clip(np.where(el[..., None] > 0, sky, ground), 0, 1).astype(np.float32)


def overcast_sky(width, seed=2):
    """Grey clouds, nothing clipped, dark ground."""
    el, _, _ = _directions(width)
    noise = periodic_noise(*el.shape, seed)[..., None]
    sky = np.array([0.72, 0.74, 0.76]) + 0.06 * noise
    ground = np.array([0.27, 0.27, 0.24]) + 0.05 * noise
    return np.clip(np.where(el[..., None] > 0, sky, ground), 0, 0.9).astype(np.float32)


def night_sky(width, seed=3):
    """Dark blue sky with single-pixel stars and a small clipped moon, darker ground."""
    el, _, direction = _directions(width)
    noise = periodic_noise(*el.shape, seed)[..., None]
    image = np.where(el[..., None] > 0, np.array([0.05, 0.07, 0.13]) + 0.015 * noise, 0.035 + 0.005 * noise)
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, el.shape[0] // 2 - 2, 60), rng.integers(0, width, 60)
    image[rows, cols] = 0.55
    moon = np.degrees(np.arccos(np.clip(direction @ _unit(35.0, 115.0), -1, 1))) < 1.5
    image[moon] = 1.0
    return np.clip(image, 0, 1).astype(np.float32)


def texture(size, seed=5, lighting=0.35):
    """A periodic stone-like texture with baked low-frequency lighting (one bright and one dark band)."""
    fine = periodic_noise(size, size, seed)
    coarse = periodic_noise(size, size, seed + 1, beta=2.0)
    y = np.arange(size)[:, None] / size * 2 * np.pi
    light = (1 + lighting * np.cos(y + 0.3)) * np.ones((1, size))
    base = (
        np.array([0.55, 0.42, 0.3])
        + 0.12 * fine[..., None]
        + 0.05 * coarse[..., None] * np.array([1, 0.5, -0.5])
    )
    return np.clip(base * light[..., None], 0, 1).astype(np.float32)


def stretched_pole_panorama(width, seed=9):
    """What a plain model draws at 2:1: detail everywhere, but above and below 55° latitude each column
    is one colour smeared along its meridian, which Blender shows as a pinched point at each pole."""
    height = width // 2
    base = 0.5 + 0.12 * periodic_noise(height, width, seed)
    streaks = 0.5 + 0.12 * periodic_noise(1, width, seed + 1)[0]
    latitude = np.abs(90.0 - (np.arange(height) + 0.5) / height * 180.0)
    blend = np.clip((latitude - 55.0) / 10.0, 0.0, 1.0)[:, None]
    grey = (1 - blend) * base + blend * streaks[None, :]
    return np.clip(np.repeat(grey[..., None], 3, axis=2) * np.array([0.8, 0.9, 1.0]), 0, 1).astype(np.float32)


# Float truth for the light tests: scenes whose radiance is known, photographed as a generator would. -----


def photograph(radiance, median=0.18):
    """What an 8-bit panorama of `radiance` looks like: exposed so the upper half's median luminance is
    `median`, clipped, sRGB-encoded and rounded to 8 bits (float32 in [0, 1])."""
    luminance = radiance @ np.array([0.2126, 0.7152, 0.0722])
    exposed = np.clip(radiance * (median / np.median(luminance[: radiance.shape[0] // 2])), 0, 1)
    srgb = np.where(exposed <= 0.0031308, exposed * 12.92, 1.055 * exposed ** (1 / 2.4) - 0.055)
    return (np.round(srgb * 255) / 255).astype(np.float32)


def _box(el, az, el_range, az_range):
    """Pixels within an elevation and azimuth range (degrees; azimuth as the image's own, from the left)."""
    el_d, az_d = np.degrees(el), np.degrees(az)
    return (el_d >= el_range[0]) & (el_d <= el_range[1]) & (az_d >= az_range[0]) & (az_d <= az_range[1])


def interior(width, seed=4):
    """A room: beige walls, a darker floor, a window showing bright sky, two ceiling lamps (radiance)."""
    el, az, direction = _directions(width)
    noise = 1 + 0.1 * periodic_noise(*el.shape, seed)[..., None]
    image = np.where(el[..., None] > 0, np.array([0.30, 0.26, 0.20]), np.array([0.12, 0.09, 0.06])) * noise
    image[_box(el, az, (0, 35), (150, 200))] = np.array([2.0, 2.4, 3.0])  # the window: sky, 10x the walls
    for lamp_az in (60.0, 240.0):
        lamp = np.degrees(np.arccos(np.clip(direction @ _unit(70.0, lamp_az), -1, 1))) < 3.0
        image[lamp] = np.array([30.0, 26.0, 20.0])
    return image


def studio(width, seed=6):
    """A photo studio: grey backdrop, two large softboxes, a white floor lit by them (radiance)."""
    el, az, _ = _directions(width)
    noise = 1 + 0.05 * periodic_noise(*el.shape, seed)[..., None]
    image = np.where(el[..., None] > 0, 0.12, 0.8) * noise * np.ones(3)
    for centre in (90.0, 270.0):
        image[_box(el, az, (15, 55), (centre - 15, centre + 15))] = 6.0
    return image


def night(width, seed=8):
    """A light-polluted night: dark orange-grey sky, a glowing band along the horizon, a moon (radiance)."""
    el, _, direction = _directions(width)
    noise = 1 + 0.1 * periodic_noise(*el.shape, seed)[..., None]
    sky = np.array([0.012, 0.010, 0.009]) * noise
    glow = np.exp(-np.degrees(np.maximum(el, 0)) / 4.0)[..., None] * np.array([0.35, 0.25, 0.15])
    image = np.where(el[..., None] > 0, sky + glow, np.array([0.006, 0.005, 0.004]) * noise)
    moon = np.degrees(np.arccos(np.clip(direction @ _unit(30.0, 200.0), -1, 1))) < 0.6
    image[moon] = 40.0
    return image


def low_red_sun(width, seed=9):
    """An 8-bit sunset: a red-orange glow around a sun at 6 degrees where only red and green clip."""
    el, _, direction = _directions(width)
    t = np.clip(el / (np.pi / 2), 0, 1)[..., None]
    sky = np.array([0.75, 0.62, 0.55]) * (1 - t) + np.array([0.3, 0.45, 0.8]) * t
    gamma = np.degrees(np.arccos(np.clip(direction @ _unit(6.0, 250.0), -1, 1)))[..., None]
    glow = np.exp(-np.maximum(gamma - 1.5, 0) / 5.0)
    sky = sky * (1 - glow) + np.array([1.2, 1.05, 0.7]) * glow
    ground = np.array([0.2, 0.15, 0.1]) * (1 + 0.2 * periodic_noise(*el.shape, seed)[..., None])
    return np.clip(np.where(el[..., None] > 0, sky, ground), 0, 1).astype(np.float32)
