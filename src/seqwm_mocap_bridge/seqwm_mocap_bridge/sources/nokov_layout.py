"""ctypes mirror of the NOKOV (XINGYING / Seeker) SDK data layout, and its decoder.

TO VERIFY AGAINST THE SDK HEADER VERSION IN USE. Everything in this module restates the SDK's
types header (`SeekerSDKTypes.h` / `NokovSDKTypes.h`, written against the 1.3.x/2.4.x layout seen
in public copies) and the C entry points its Python wrapper calls. Nothing here could be checked
against a real `libnokov_sdk.so` on the development machines. If the SDK in use differs, edit
only this module:
- the MAX_* array sizes (they fix the byte offsets of every later field of a frame);
- field order and types of `RigidBodyData` and `FrameOfMocapData` up to `params` (the bridge
  reads nothing after it; newer SDKs append extension data, which is harmless here because the
  SDK allocates the frame and we only read through its pointer);
- `C_API`: exported function names and signatures of the C interface.
Per-frame reading goes through `decode_frame`, which is what the ctypes callback calls, so a test
can build these structures in memory and push them through the exact same code.
"""
from __future__ import annotations

import ctypes
from ctypes import (CFUNCTYPE, POINTER, Structure, Union, c_bool, c_char, c_char_p, c_float,
                    c_int, c_longlong, c_short, c_ubyte, c_uint, c_void_p)
from typing import Any

from ..raw_frame import RawFrame, RawRigidBody

# Array sizes of the header (they determine offsets: verify first).
MAX_MODELS = 200
MAX_RIGIDBODIES = 1000
MAX_NAMELENGTH = 256
MAX_SKELETONS = 100
MAX_SKELRIGIDBODIES = 200
MAX_LABELED_MARKERS = 1000
MAX_ANALOG_CHANNELS = 32

# DataDescriptors enum: the `type` of one data description.
DESCRIPTOR_MARKERSET = 0
DESCRIPTOR_RIGIDBODY = 1
DESCRIPTOR_SKELETON = 2
DESCRIPTOR_FORCEPLATE = 3

ERROR_CODE_OK = 0

MarkerData = c_float * 3   # x, y, z (mm)


class Marker(Structure):
    _fields_ = [('ID', c_int), ('x', c_float), ('y', c_float), ('z', c_float),
                ('size', c_float), ('params', c_short)]


class MarkerSetData(Structure):
    _fields_ = [('szName', c_char * MAX_NAMELENGTH), ('nMarkers', c_int),
                ('Markers', POINTER(MarkerData))]


class RigidBodyData(Structure):
    """One rigid body of one frame: ID, position (mm), quaternion (x, y, z, w), tracking info."""

    _fields_ = [('ID', c_int),
                ('x', c_float), ('y', c_float), ('z', c_float),
                ('qx', c_float), ('qy', c_float), ('qz', c_float), ('qw', c_float),
                ('nMarkers', c_int),
                ('Markers', POINTER(MarkerData)),
                ('MarkerIDs', POINTER(c_int)),
                ('MarkerSizes', POINTER(c_float)),
                ('MeanError', c_float),
                ('params', c_short)]


class SkeletonData(Structure):
    _fields_ = [('skeletonID', c_int), ('nRigidBodies', c_int),
                ('RigidBodyData', POINTER(RigidBodyData))]


class FrameOfMocapData(Structure):
    """One camera frame as the SDK hands it to the data callback."""

    _fields_ = [('iFrame', c_int),
                ('nMarkerSets', c_int),
                ('MocapData', MarkerSetData * MAX_MODELS),
                ('nOtherMarkers', c_int),
                ('OtherMarkers', POINTER(MarkerData)),
                ('nRigidBodies', c_int),
                ('RigidBodies', RigidBodyData * MAX_RIGIDBODIES),
                ('nSkeletons', c_int),
                ('Skeletons', SkeletonData * MAX_SKELETONS),
                ('nLabeledMarkers', c_int),
                ('LabeledMarkers', Marker * MAX_LABELED_MARKERS),
                ('nAnalogdatas', c_int),
                ('Analogdata', c_float * MAX_ANALOG_CHANNELS),
                ('fLatency', c_float),
                ('Timecode', c_uint),
                ('TimecodeSubframe', c_uint),
                ('iTimeStamp', c_longlong),
                ('params', c_short)]


class RigidBodyDescription(Structure):
    _fields_ = [('szName', c_char * MAX_NAMELENGTH), ('ID', c_int), ('parentID', c_int),
                ('offsetx', c_float), ('offsety', c_float), ('offsetz', c_float),
                ('qx', c_float), ('qy', c_float), ('qz', c_float), ('qw', c_float)]


class _DescriptionData(Union):
    # Only the rigid-body member is read; every member is a pointer, so the union is one pointer.
    _fields_ = [('MarkerSetDescription', c_void_p),
                ('RigidBodyDescription', POINTER(RigidBodyDescription)),
                ('SkeletonDescription', c_void_p),
                ('ForcePlateDescription', c_void_p)]


class DataDescription(Structure):
    _fields_ = [('type', c_int), ('Data', _DescriptionData)]


class DataDescriptions(Structure):
    _fields_ = [('nDataDescriptions', c_int),
                ('arrDataDescriptions', DataDescription * MAX_MODELS)]


class ServerDescription(Structure):
    _fields_ = [('HostPresent', c_bool),
                ('szHostComputerName', c_char * MAX_NAMELENGTH),
                ('HostComputerAddress', c_ubyte * 4),
                ('szHostApp', c_char * MAX_NAMELENGTH),
                ('HostAppVersion', c_ubyte * 4),
                ('NokovSDKVersion', c_ubyte * 4)]


# void (*)(sFrameOfMocapData* frame, void* user_data)
DATA_CALLBACK = CFUNCTYPE(None, POINTER(FrameOfMocapData), c_void_p)

# The SDK's C interface (the functions its Python wrapper binds): name -> (restype, argtypes).
# The client is an opaque handle created by CreateClient.
C_API: dict[str, tuple[Any, list[Any]]] = {
    'CreateClient': (c_int, [POINTER(c_void_p)]),
    'DestroyClient': (c_int, [c_void_p]),
    'Initialize': (c_int, [c_void_p, c_char_p]),
    'Uninitialize': (c_int, [c_void_p]),
    'SetDataCallback': (c_int, [c_void_p, DATA_CALLBACK, c_void_p]),
    'GetDataDescriptions': (c_int, [c_void_p, POINTER(POINTER(DataDescriptions))]),
}


class SdkLayoutError(RuntimeError):
    """The loaded library does not offer the C interface this module describes."""


def bind_c_api(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Set argtypes/restype of every C_API function; name the missing symbol if one is absent."""
    for name, (restype, argtypes) in C_API.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise SdkLayoutError(
                f'{getattr(lib, "_name", "the SDK library")} has no symbol {name}: the SDK '
                f'version in use does not match sources/nokov_layout.py (C_API)') from None
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def _field(obj: Any, name: str, default: Any = 0) -> Any:
    return getattr(obj, name, default)


def decode_frame(frame: Any) -> RawFrame:
    """Copy one SDK frame (our ctypes struct or the nokovpy wrapper's) into a RawFrame.

    This is what the data callback runs, inside the SDK's thread, before the SDK reuses its
    buffer: copy out only what the bridge needs, at once. Counts outside [0, MAX_RIGIDBODIES]
    (a layout mismatch or a corrupt frame) are clamped, never trusted for indexing.
    """
    n = int(frame.nRigidBodies)
    n = max(0, min(n, len(frame.RigidBodies)))
    bodies = []
    for i in range(n):
        rb = frame.RigidBodies[i]
        bodies.append(RawRigidBody(
            id=int(rb.ID), x=float(rb.x), y=float(rb.y), z=float(rb.z),
            qx=float(rb.qx), qy=float(rb.qy), qz=float(rb.qz), qw=float(rb.qw),
            params=int(_field(rb, 'params')), mean_error=float(_field(rb, 'MeanError', 0.0))))
    return RawFrame(frame_number=int(frame.iFrame), timestamp=int(_field(frame, 'iTimeStamp')),
                    latency=float(_field(frame, 'fLatency', 0.0)), bodies=bodies)


def decode_descriptions(descriptions: Any) -> dict[int, str]:
    """Rigid-body ID -> name from the SDK's data descriptions (other kinds are skipped)."""
    out: dict[int, str] = {}
    count = max(0, min(int(descriptions.nDataDescriptions),
                       len(descriptions.arrDataDescriptions)))
    for i in range(count):
        desc = descriptions.arrDataDescriptions[i]
        if int(desc.type) != DESCRIPTOR_RIGIDBODY:
            continue
        pointer = desc.Data.RigidBodyDescription
        if not pointer:
            continue
        rb = pointer.contents
        name = bytes(rb.szName).split(b'\0', 1)[0].decode('utf-8', errors='replace')
        if name:
            out[int(rb.ID)] = name
    return out
