"""DeepMIMO v4 interoperability: scenario folder <-> simgen store, and DeepMIMO-convention CSI.

Modules, in the order data flows through them:

* :mod:`.format`: the folder layout (``params.json`` plus one
  ``{matrix}_t{txset:03d}_tx{tx:03d}_r{rxset:03d}.{npz|mat|npy}`` file per matrix and TX),
  interaction codes, :func:`read_scenario`;
* :mod:`.importer`: :func:`import_scenario`, a folder -> our store contract;
* :mod:`.export`: :func:`export_scenario`, a store with path arrays -> a folder;
* :mod:`.channel`: array responses in Sionna's convention (:func:`steering_vector`,
  :func:`path_gains`) and DeepMIMO's own channel aligned to ours (:func:`deepmimo_csi`).

Only :func:`load_with_deepmimo` and :func:`deepmimo_csi` need the ``deepmimo`` package (an optional
extra: ``pip install --no-deps deepmimo==4.0.5 tqdm requests``, because it caps numpy < 2.3);
they import it lazily.

Conventions (``../shared/specs/sionna-rt-and-deepmimo.md`` §2.4, §5):

* DeepMIMO stores one complex gain per path (``power`` dBW = 20 log10|a|, ``phase`` deg), for a
  single element: the Sionna converter keeps element 0 of ``a`` and **no propagation phase**
  e^{-j2pi f_c tau}. Our ``path_a`` is per antenna pair, also without the propagation phase, so
  on import ``path_a = a * s_ue(aoa) * s_trp(aod)`` with :func:`steering_vector`; on export the
  single gain is recovered from ``path_a`` by projecting onto those steering vectors (exact for
  single-polarised arrays whose elements share one pattern: the exported gain then includes that
  element pattern). Dual-polarised stores export their first polarisation.
* Angles: DeepMIMO ``*_el`` are zenith angles in degrees (like our ``*_zen`` in radians).
* Interactions: DeepMIMO writes one decimal digit per bounce, first bounce first
  (0 LoS, 1 reflection, 2 diffraction, 3 scattering, 4 transmission); we store Sionna bit codes
  per depth (1 specular, 2 diffuse, 4 refraction, 8 diffraction).
* Per-link LoS on import: ``LinkState.LOS`` when **any** path of the link is a LoS path
  (interaction code 0, or when ``inter`` is absent a delay equal to the geometric distance / c
  within 1 cm); ``NLOS`` when there are paths but none is LoS, ``NO_PATH`` when there is none.
  DeepMIMO's own ``dataset.los`` uses the *strongest* path only (``inter[:, 0] == 0``), so a LoS
  path weaker than a reflection is NLoS there and LoS here. OLOS/BLOCKED need the geometry and
  are never produced.
* DeepMIMO's channel (``generator/channel.py``) differs from our :func:`simgen.channel.cfr` by
  (1) a 1/sqrt(N) scale, (2) subcarriers at k*B/N from 0 instead of centred offsets,
  (3) the array phase referenced to element 0 instead of the array centre, with elements ordered
  y-fastest from the bottom instead of Sionna's column-first from the top (our order is the
  dataset contract's, ``simgen.schema.ANTENNA_ORDER``), and (4) no carrier phase
  e^{-j2pi f_c tau}. :func:`deepmimo_csi` aligns all of them.
* Dynamic scenarios (``scene.num_scenes`` > 1, one sub-folder per snapshot) become consecutive
  blocks of samples (snapshot-major); root attribute ``deepmimo_snapshot_offsets`` gives the
  first sample of each snapshot. Moving TXs (TX positions that change between snapshots) are
  refused: our TRP positions are static per store.
* Memory: the selected TX/RX sets are read whole (about 30 bytes per path slot per link); select
  ``tx_sets``/``rx_sets`` for the largest scenarios (O1 has 1.2 M users per BS).
"""

from .channel import (
    CONVENTIONS,
    aligned_phase,
    deepmimo_channel_params,
    deepmimo_csi,
    direction,
    dm_antenna_order,
    element_positions,
    from_deepmimo_channel,
    load_with_deepmimo,
    path_gains,
    reference_phase,
    rotation_matrix,
    steering_vector,
)
from .export import element_gains, export_scenario, store_arrays
from .format import MATRICES, bits_to_digits, digits_to_bits, read_scenario
from .importer import import_scenario

__all__ = [
    "CONVENTIONS",
    "MATRICES",
    "aligned_phase",
    "bits_to_digits",
    "deepmimo_channel_params",
    "deepmimo_csi",
    "digits_to_bits",
    "direction",
    "dm_antenna_order",
    "element_gains",
    "element_positions",
    "export_scenario",
    "from_deepmimo_channel",
    "import_scenario",
    "load_with_deepmimo",
    "path_gains",
    "read_scenario",
    "reference_phase",
    "rotation_matrix",
    "steering_vector",
    "store_arrays",
]
