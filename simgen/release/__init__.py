"""Release tools: check a finished store (validate), describe it (figures, info) and package it
(publish: dataset card, Croissant, manifest). They read stores; they never render."""
