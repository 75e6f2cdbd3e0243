"""The application's use cases beside the event store's service (commands/app.py): imports and
OAuth sign-in (imports.py), search by example and verification (search.py), people (people.py).
They need the models (gpu_workers) and the read models (projections), which commands/ may not
import, so they live here; each takes what it uses as typed arguments, never the System."""
