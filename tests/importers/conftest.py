"""Fake VK and Yandex.Disk servers (real HTTP on 127.0.0.1) for the importer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import vk_server, yadisk_server


@pytest.fixture
def vk() -> Iterator[tuple[vk_server.FakeVk, str]]:
    """A fresh fake VK and its API base URL (…/method)."""
    with vk_server.running() as served:
        yield served


@pytest.fixture
def yadisk() -> Iterator[tuple[yadisk_server.FakeYandexDisk, str]]:
    """A fresh fake Yandex.Disk and its API base URL."""
    with yadisk_server.running() as served:
        yield served
