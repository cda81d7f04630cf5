"""Erasing a device (`DELETE /v1/devices/me`): its votes, token, trust record and Do-Not-Call
registrations go (blocklist/devices.py), and its complaints are detached from it: they stay as
evidence for their cases, naming no device, without the contact it gave (blocklist/complaints.py).
"""
from __future__ import annotations

from . import complaints, devices
from .store import Store


def erase(store: Store, device_id: str) -> int:
    """Erase the device; returns how many votes were withdrawn. The device's record goes first,
    so a complaint still being filed either is detached here or detaches itself."""
    withdrawn = devices.erase(store, device_id)
    complaints.detach_device(store, device_id)
    return withdrawn
