"""The dataset contract: one place for array names, dimensions, dtypes, units and enum codes.

A store holds one Zarr group per condition (``dry``, ``rain_25mmh``, ...). Each group is a
self-contained xarray Dataset with the variables below; ``csi`` and ``rx_power`` differ between
conditions, the geometry and labels are repeated so each group can be opened on its own.

Conventions every reader needs (also in ``docs/architecture.md``, "Dataset contract"):

- **Antenna order** (``ue_ant``, ``trp_ant``): Sionna's ``PlanarArray`` order,
  polarization-major then column-first. Antenna ``i = pol * rows * cols + col * rows + row``:
  all elements of the first polarization (V, or +45 deg for cross) come first, then all of the
  second; within one polarization, element ``n = col * rows + row`` is numbered column by
  column from the top-left of the array as seen from its front (in the array frame, y grows
  with ``col`` and z falls with ``row``; positions are relative to the array centre).
- **Subcarriers** (``subcarrier`` coordinate, Hz): baseband offsets from the carrier ``f_c``,
  centred like Sionna's ``subcarrier_frequencies``: ``[-K/2, ..., K/2 - 1] * df`` for even K,
  ``[-(K-1)/2, ..., (K-1)/2] * df`` for odd K; subcarrier k is at absolute frequency
  ``f_c + subcarrier[k]`` and ``csi[..., k] = sum_p a_p exp(-j 2 pi (f_c + subcarrier[k]) tau_p)``.
- **rx_power** is a path gain in dB (not dBm: add ``trp_tx_power`` for a received power): the
  power one UE element receives on all its polarization ports together from one TRP port
  radiating unit power, summed over paths, averaged over TRP ports and element pairs
  (``channel.path_gain_db``). Free space gives ``(lambda / 4 pi d)^2`` for V, H, VH and cross
  arrays alike, i.e. it is the co-polarized gain of an ideal single-port link.
"""

from __future__ import annotations

import enum

import numpy as np

SCHEMA_VERSION = "1.0"

# The three conventions above as one line each (published in the dataset card and Croissant).
ANTENNA_ORDER = (
    "polarization-major, then column-first from the top-left (Sionna PlanarArray): "
    "antenna = pol * rows * cols + col * rows + row"
)
SUBCARRIER_CONVENTION = (
    "baseband offsets from the carrier, centred: [-K/2 .. K/2-1] * spacing (even K), "
    "absolute frequency = carrier + offset"
)
RX_POWER_DEFINITION = (
    "path gain in dB (add trp_tx_power for dBm): sum over paths and UE polarization ports, "
    "mean over TRP ports and element pairs; free space (lambda / 4 pi d)^2"
)
SPEED_OF_LIGHT = 299_792_458.0  # m/s


class LinkState(enum.IntEnum):
    """Per-link state of the TRP->UE line of sight (decided by our own ray test)."""

    LOS = 0  # segment clear
    OLOS = 1  # blocked only by sparse objects (foliage, street furniture)
    NLOS = 2  # blocked by a building (or terrain)
    BLOCKED = 3  # blocked by a vehicle while the static scene is clear
    NO_PATH = 4  # no propagation path found at all


LINK_STATE_ATTRS = {
    "flag_values": [int(s) for s in LinkState],
    "flag_meanings": " ".join(s.name for s in LinkState),
}

# Root attributes of a store rendered from a world scene (OSM / procedural, simgen.world):
# ``crs``: the scene frame's projection, a string pyproj.CRS accepts, such that
# ``pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)`` maps ``ue_position`` x, y
# (metres) to lon, lat (degrees); absent when the scene has no geo-reference (built-in scenes,
# hand-written XML, procedural cities). ``world``: the world's provenance (source file and its
# sha256, bbox, height-rule shares, repaired / skipped counts), absent for other scenes.
CRS_ATTR = "crs"
WORLD_ATTR = "world"

# Object categories used to classify what blocks a line of sight.
CATEGORIES = ("building", "ground", "vehicle", "foliage")

# Vehicle type codes (``vehicle_type``).
VEHICLE_TYPES = ("car", "bus", "truck")

# name -> (dims, dtype, attrs).  Dims use these names throughout the code base.
VARIABLES: dict[str, tuple[tuple[str, ...], np.dtype, dict]] = {
    "csi": (
        ("sample", "trp", "ue_ant", "trp_ant", "subcarrier"),
        np.dtype("complex64"),
        {
            "units": "1",
            "long_name": "downlink channel frequency response (linear path gain, "
            "absolute delays: includes exp(-j 2 pi (f_c + f_k) tau))",
        },
    ),
    "cir": (
        ("sample", "trp", "ue_ant", "trp_ant", "tap"),
        np.dtype("complex64"),
        {
            "units": "1",
            "long_name": "channel impulse response taps at the system bandwidth W: "
            "h[l] = sum_p a_p exp(-j 2 pi f_c tau_p) sinc(l - W tau_p); tap l is at l / W s on "
            "the common clock (absolute delays)",
        },
    ),
    "ue_position": (
        ("sample", "xyz"),
        np.dtype("float32"),
        {"units": "m", "long_name": "UE position in the scene frame"},
    ),
    "ue_velocity": (
        ("sample", "xyz"),
        np.dtype("float32"),
        {"units": "m s-1", "long_name": "UE velocity (Doppler); 0 for static UEs"},
    ),
    "link_state": (
        ("sample", "trp"),
        np.dtype("int8"),
        {"units": "1", "long_name": "line-of-sight state", **LINK_STATE_ATTRS},
    ),
    "toa": (
        ("sample", "trp"),
        np.dtype("float32"),
        {
            "units": "s",
            "long_name": "first-arrival delay on the common (synchronized) clock; NaN when no path",
        },
    ),
    "los_distance": (
        ("sample", "trp"),
        np.dtype("float32"),
        {"units": "m", "long_name": "geometric TRP-UE distance"},
    ),
    "rx_power": (
        ("sample", "trp"),
        np.dtype("float32"),
        {
            "units": "dB",
            "long_name": "path gain: sum over paths and UE polarization ports of |a|^2, "
            "averaged over TRP ports and element pairs (free space: (lambda/4 pi d)^2 for "
            "any polarization); NaN when no path",
        },
    ),
    "num_paths": (
        ("sample", "trp"),
        np.dtype("int16"),
        {"units": "1", "long_name": "number of valid paths found by the solver"},
    ),
    "blocking_vehicle": (
        ("sample", "trp"),
        np.dtype("int16"),
        {
            "units": "1",
            "long_name": "first vehicle (index on the vehicle axis) on the TRP-UE "
            "segment; -1 if none",
        },
    ),
    "snapshot": (
        ("sample",),
        np.dtype("int32"),
        {"units": "1", "long_name": "traffic snapshot / condition index"},
    ),
    "time": (("sample",), np.dtype("float32"), {"units": "s", "long_name": "time of the snapshot"}),
    # receiver noise (simgen.receiver; config ``receiver:``): per TRP, written at creation
    "noise_power_dbm": (
        ("trp",),
        np.dtype("float32"),
        {
            "units": "dBm",
            "long_name": "receiver thermal noise power k T B F over the system bandwidth",
        },
    ),
    "snr_db": (
        ("sample", "trp"),
        np.dtype("float32"),
        {
            "units": "dB",
            "long_name": "per-element SNR of the stored channel: trp_tx_power + 10 log10(mean "
            "|csi|^2 over ue_ant, trp_ant, subcarrier) - noise_power_dbm; NaN without signal",
        },
    ),
    # optional path-level arrays (output.paths: true); path axis sorted by delay
    "path_tau": (
        ("sample", "trp", "path"),
        np.dtype("float32"),
        {"units": "s", "long_name": "absolute path delay; NaN for padding"},
    ),
    "path_a": (
        ("sample", "trp", "ue_ant", "trp_ant", "path"),
        np.dtype("complex64"),
        {
            "units": "1",
            "long_name": "complex path gain per antenna pair, without the "
            "propagation phase exp(-j 2 pi f_c tau); 0 for padding",
        },
    ),
    "path_aod_az": (
        ("sample", "trp", "path"),
        np.dtype("float32"),
        {"units": "rad", "long_name": "azimuth of departure at the TRP"},
    ),
    "path_aod_zen": (
        ("sample", "trp", "path"),
        np.dtype("float32"),
        {"units": "rad", "long_name": "zenith angle of departure at the TRP"},
    ),
    "path_aoa_az": (
        ("sample", "trp", "path"),
        np.dtype("float32"),
        {"units": "rad", "long_name": "azimuth of arrival at the UE"},
    ),
    "path_aoa_zen": (
        ("sample", "trp", "path"),
        np.dtype("float32"),
        {"units": "rad", "long_name": "zenith angle of arrival at the UE"},
    ),
    "path_doppler": (
        ("sample", "trp", "path"),
        np.dtype("float32"),
        {"units": "Hz", "long_name": "Doppler shift from moving vehicles and UEs"},
    ),
    "path_interactions": (
        ("sample", "trp", "path", "depth"),
        np.dtype("uint8"),
        {
            "units": "1",
            "long_name": "interaction type per bounce (Sionna InteractionType bit codes)",
            "flag_masks": [1, 2, 4, 8],
            "flag_meanings": "specular diffuse refraction diffraction",
        },
    ),
}

# Per-snapshot vehicle states, written at creation when the config has traffic.
VEHICLE_VARIABLES = {
    "vehicle_position": (
        ("snapshot", "vehicle", "xyz"),
        np.dtype("float32"),
        {
            "units": "m",
            "long_name": "vehicle bounding-box centre; NaN when the slot is not on the road",
        },
    ),
    "vehicle_velocity": (
        ("snapshot", "vehicle", "xyz"),
        np.dtype("float32"),
        {"units": "m s-1", "long_name": "vehicle velocity"},
    ),
    "vehicle_yaw": (
        ("snapshot", "vehicle"),
        np.dtype("float32"),
        {"units": "rad", "long_name": "vehicle heading; NaN when not on the road"},
    ),
    "vehicle_type": (
        ("vehicle",),
        np.dtype("int8"),
        {
            "units": "1",
            "long_name": "vehicle type",
            "flag_values": list(range(len(VEHICLE_TYPES))),
            "flag_meanings": " ".join(VEHICLE_TYPES),
        },
    ),
}

PATH_VARIABLES = tuple(v for v in VARIABLES if v.startswith("path_"))
CIR_VARIABLES = ("cir",)  # only with output.cir_taps
# Receiver-noise arrays: in every store rendered by simgen render (not in DeepMIMO imports,
# which carry no transmit power, nor in stores made before they existed).
# ``noise_power_dbm`` also has the attributes RECEIVER_ATTRS (the inputs of k T B F).
RECEIVER_VARIABLES = ("noise_power_dbm", "snr_db")
RECEIVER_ATTRS = ("noise_figure_db", "temperature_k", "bandwidth_hz")
SAMPLE_VARIABLES = tuple(
    v for v in VARIABLES if v not in PATH_VARIABLES + CIR_VARIABLES + RECEIVER_VARIABLES
)

# Coordinates and per-TRP variables written once per group at creation.
STATIC_ATTRS = {
    "trp_position": {"units": "m", "long_name": "TRP position in the scene frame"},
    "trp_orientation": {"units": "rad", "long_name": "TRP array orientation (yaw, pitch, roll)"},
    "trp_tx_power": {"units": "dBm", "long_name": "TRP transmit power"},
    "subcarrier": {"units": "Hz", "long_name": "subcarrier frequency offset from the carrier"},
    "trp": {"long_name": "TRP name"},
}

# Fill values written before a shard lands (NaN where a float can express "not rendered").
FILL = {"complex64": 0j, "float32": np.nan, "int8": -1, "int16": -1, "int32": -1, "uint8": 0}
