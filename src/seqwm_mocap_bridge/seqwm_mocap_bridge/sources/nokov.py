"""The real cameras: frames from the NOKOV / XINGYING SDK, with reconnect and back-off.

Two ways into the vendor SDK (neither is on a package registry; both come with XINGYING):
- the Python wrapper `nokovpy` (imported as `nokov.nokovsdk`), used when importable;
- otherwise `libnokov_sdk.so` directly through ctypes (`sdk_library_path`), with the layout and
  C signatures of `nokov_layout` (to verify against the SDK header version in use).
Either way the SDK calls our data callback from its own thread; the callback takes the receive
time first, copies the frame with `nokov_layout.decode_frame` and hands it to the sink. The
connection runs in a thread of its own: connect, fetch the data descriptions (body names), watch
for frames; on failure or silence longer than `sdk_frame_timeout_s`, close and retry after an
exponentially growing delay (initial .. max, reset once frames flow again).
"""
from __future__ import annotations

import ctypes
import importlib
import threading
import time
from typing import Any, Callable, Protocol

from .base import FrameSource, SourceSink
from .nokov_layout import (DATA_CALLBACK, ERROR_CODE_OK, DataDescriptions, bind_c_api,
                           decode_descriptions, decode_frame)

# Module names under which the vendor's Python wrapper has been shipped.
WRAPPER_MODULES = ('nokov.nokovsdk', 'nokovpy.nokovsdk', 'nokovpy')
DEFAULT_LIBRARY = 'libnokov_sdk.so'

FrameHandler = Callable[[Any, Any], None]   # (pointer to frame struct, user data)


class SourceError(RuntimeError):
    """The source cannot work at all (no SDK library, bad file): the bridge must not start."""


class SdkClient(Protocol):
    """One connection to the XINGYING host through some binding of the SDK."""

    def connect(self, server_ip: str, on_frame: FrameHandler) -> None:
        """Register `on_frame` as data callback and connect; raise ConnectionError on failure."""

    def descriptions(self) -> dict[int, str]:
        """Rigid body ID -> name from the SDK's data descriptions."""

    def close(self) -> None:
        """Disconnect and free the client."""


class CtypesClient:
    """libnokov_sdk.so through ctypes, with the C interface described in nokov_layout."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self._handle: ctypes.c_void_p | None = None
        self._callback = None   # keep the CFUNCTYPE object alive while the SDK may call it

    @staticmethod
    def load(path: str) -> ctypes.CDLL:
        target = path or DEFAULT_LIBRARY
        try:
            lib = ctypes.CDLL(target)
        except OSError as exc:
            raise SourceError(
                f'cannot load the NOKOV SDK library {target!r} ({exc}); install the XINGYING '
                f'SDK and set sdk_library_path, or install its nokovpy wrapper') from None
        return bind_c_api(lib)

    def connect(self, server_ip: str, on_frame: FrameHandler) -> None:
        handle = ctypes.c_void_p()
        rc = self._lib.CreateClient(ctypes.byref(handle))
        if rc != ERROR_CODE_OK or not handle:
            raise ConnectionError(f'CreateClient returned {rc}')
        self._handle = handle
        self._callback = DATA_CALLBACK(on_frame)
        rc = self._lib.SetDataCallback(handle, self._callback, None)
        if rc != ERROR_CODE_OK:
            raise ConnectionError(f'SetDataCallback returned {rc}')
        rc = self._lib.Initialize(handle, server_ip.encode())
        if rc != ERROR_CODE_OK:
            raise ConnectionError(f'Initialize({server_ip}) returned error code {rc}')

    def descriptions(self) -> dict[int, str]:
        if self._handle is None:
            return {}
        pointer = ctypes.POINTER(DataDescriptions)()
        rc = self._lib.GetDataDescriptions(self._handle, ctypes.byref(pointer))
        if rc != ERROR_CODE_OK or not pointer:
            raise ConnectionError(f'GetDataDescriptions returned {rc}')
        return decode_descriptions(pointer.contents)

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self._lib.Uninitialize(handle)
            self._lib.DestroyClient(handle)


class WrapperClient:
    """The vendor's Python wrapper (`PySDKClient`); same callback, same decoder."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self._client: Any = None

    @staticmethod
    def find() -> Any | None:
        for name in WRAPPER_MODULES:
            try:
                module = importlib.import_module(name)
            except Exception:   # noqa: BLE001 - the wrapper loads a native library on import
                continue
            if hasattr(module, 'PySDKClient'):
                return module
        return None

    def connect(self, server_ip: str, on_frame: FrameHandler) -> None:
        self._client = self._module.PySDKClient()
        self._client.PySetDataCallback(on_frame, None)
        rc = self._client.Initialize(server_ip.encode())
        if rc != ERROR_CODE_OK:
            raise ConnectionError(f'Initialize({server_ip}) returned error code {rc}')

    def descriptions(self) -> dict[int, str]:
        pointer = ctypes.POINTER(self._module.DataDescriptions)()
        rc = self._client.PyGetDataDescriptions(pointer)
        if rc != ERROR_CODE_OK or not pointer:
            raise ConnectionError(f'PyGetDataDescriptions returned {rc}')
        return decode_descriptions(pointer.contents)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            del client   # the wrapper uninitialises and destroys its client on deletion


class NokovSource(FrameSource):
    kind = 'nokov'

    def __init__(self, server_ip: str, library_path: str = '', reconnect_initial_s: float = 0.5,
                 reconnect_max_s: float = 10.0, frame_timeout_s: float = 3.0,
                 client_factory: Callable[[], SdkClient] | None = None) -> None:
        self.server_ip = server_ip
        self.library_path = library_path
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self.frame_timeout_s = frame_timeout_s
        self._factory = client_factory
        self._binding = 'injected client' if client_factory else ''
        self._sink: SourceSink | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()       # frames are passed on only once names are known
        self._last_frame = time.monotonic()
        self._frames = 0
        self.connect_attempts = 0
        self.delays: list[float] = []          # back-off delays used, for diagnostics and tests

    # ------------------------------------------------------------------ SDK callback
    def on_sdk_frame(self, frame_ptr: Any, _user_data: Any = None) -> None:
        """The data callback (SDK thread): receive time first, copy the frame, hand it on."""
        receive_ns = time.time_ns()
        try:
            if not frame_ptr or not self._ready.is_set() or self._sink is None:
                return
            raw = decode_frame(frame_ptr.contents)
            self._last_frame = time.monotonic()
            self._frames += 1
            self._sink.frame(raw, receive_ns)
        except Exception as exc:   # noqa: BLE001 - never let an exception into the SDK's thread
            if self._sink is not None:
                self._sink.event('sdk_decode', 'error', f'cannot decode an SDK frame: {exc!r}')

    # ------------------------------------------------------------------ lifecycle
    def _make_factory(self) -> Callable[[], SdkClient]:
        module = WrapperClient.find()
        if module is not None:
            self._binding = f'nokovpy ({module.__name__})'
            return lambda: WrapperClient(module)
        lib = CtypesClient.load(self.library_path)
        self._binding = f'ctypes ({self.library_path or DEFAULT_LIBRARY})'
        return lambda: CtypesClient(lib)

    def start(self, sink: SourceSink) -> None:
        self._sink = sink
        if self._factory is None:
            self._factory = self._make_factory()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name='nokov-sdk', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def describe(self) -> str:
        return f'nokov {self.server_ip} via {self._binding or "?"}'

    def _run(self) -> None:
        assert self._sink is not None and self._factory is not None
        sink = self._sink
        delay = self.reconnect_initial_s
        while not self._stop.is_set():
            self.connect_attempts += 1
            client: SdkClient | None = None
            try:
                client = self._factory()
                sink.sequence_reset(f'connecting to XINGYING at {self.server_ip}')
                client.connect(self.server_ip, self.on_sdk_frame)
                names = client.descriptions()
                sink.descriptions(names)
                listed = ', '.join(f'{i}={n}' for i, n in sorted(names.items())) or 'none'
                sink.event('sdk_connected', 'info',
                           f'connected to XINGYING at {self.server_ip} (attempt '
                           f'{self.connect_attempts}); rigid bodies: {listed}')
                self._frames = 0
                self._last_frame = time.monotonic()
                self._ready.set()
                while not self._stop.wait(0.05):
                    silent = time.monotonic() - self._last_frame
                    if silent > self.frame_timeout_s:
                        raise ConnectionError(f'no frame for {silent:.1f} s')
                    if self._frames:
                        delay = self.reconnect_initial_s
            except Exception as exc:   # noqa: BLE001 - any SDK failure means: retry later
                if self._stop.is_set():
                    break
                sink.event('sdk_connect', 'warn',
                           f'NOKOV SDK at {self.server_ip}: {exc}; reconnecting in '
                           f'{delay:.1f} s (attempt {self.connect_attempts})')
            finally:
                self._ready.clear()
                if client is not None:
                    try:
                        client.close()
                    except Exception as exc:   # noqa: BLE001
                        sink.event('sdk_close', 'warn', f'closing the SDK client failed: {exc!r}')
            self.delays.append(delay)
            if self._stop.wait(delay):
                break
            delay = min(delay * 2.0, self.reconnect_max_s)
