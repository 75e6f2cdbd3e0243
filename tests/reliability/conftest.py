"""The reliability suite: faults (restarts, kill -9), abuse (GraphQL, hostile images) and
load bounds, each a test that would have caught a failure seen on the embedded profile.

In-process servers come from tests/api's fixtures (a TestClient on real parts); the restart
tests run `facesearch up` as a subprocess on 127.0.0.1 (see server.py).
"""

from tests.api.conftest import api, users  # noqa: F401 - fixtures shared with tests/api
from tests.importers.conftest import api_on_fakes, vk, yadisk, yandex_id  # noqa: F401 - the API on fake VK, Yandex
from tests.pipeline.conftest import data_dir, models_dir, pipeline_settings  # noqa: F401, E402 - photos, weights
