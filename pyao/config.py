"""Every default and environment key of pyao, in one place.

Each unit reads its settings from a frozen dataclass here; ``from_env`` applies
``PYAO_*`` environment variables over the defaults, and the CLI applies its flags
over that. Nothing else in pyao reads the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MiB = 1024 * 1024


def _from_env(cls: type[T], prefix: str, **overrides: Any) -> T:
    """Defaults < ``{prefix}{FIELD}`` environment variables < explicit overrides (None = not given)."""
    base = cls()
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        raw = os.environ.get(prefix + f.name.upper())
        if raw is not None:
            current = getattr(base, f.name)
            if isinstance(current, bool):
                values[f.name] = raw.lower() in ("1", "true", "yes", "on")
            elif isinstance(current, int):
                values[f.name] = int(raw)
            elif isinstance(current, float):
                values[f.name] = float(raw)
            elif isinstance(current, Path):
                values[f.name] = Path(raw)
            else:
                values[f.name] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    return replace(base, **values)  # type: ignore[type-var]


@dataclass(frozen=True)
class GatewayConfig:
    """The embedded permanent store. Environment prefix ``PYAO_GATEWAY_``."""

    host: str = "127.0.0.1"
    port: int = 4000
    #: ``sqlite:///path/to/file.db`` (default under data_dir), ``sqlite://:memory:`` or ``postgresql://…``
    db: str = ""
    data_dir: Path = Path.home() / ".pyao" / "gateway"
    #: largest accepted upload (a data item or a bundle), bytes
    max_upload_bytes: int = 256 * MiB
    #: a new block is sealed every this many seconds (Arweave: ~120)
    block_seconds: float = 2.0

    @classmethod
    def from_env(cls, **overrides: Any) -> GatewayConfig:
        return _from_env(cls, "PYAO_GATEWAY_", **overrides)


@dataclass(frozen=True)
class SchedulerConfig:
    """The scheduler unit. Environment prefix ``PYAO_SU_``."""

    host: str = "127.0.0.1"
    port: int = 9000
    #: the SU's public URL, published in its Scheduler-Location item ("" = http://host:port)
    url: str = ""
    db: str = ""
    data_dir: Path = Path.home() / ".pyao" / "su"
    #: the SU's key file (RSA JWK or Ed25519 OKP JWK); created if missing
    wallet: Path = Path.home() / ".pyao" / "su" / "wallet.json"
    #: key type generated when ``wallet`` does not exist: "arweave" (RSA) or "ed25519"
    wallet_type: str = "ed25519"
    gateway_url: str = "http://127.0.0.1:4000"
    #: largest accepted message or process item, bytes
    max_item_bytes: int = 16 * MiB
    #: Scheduler-Location Time-To-Live, ms
    location_ttl_ms: int = 3_600_000
    #: base-layer assignments need this many confirmations (official default)
    settlement_depth: int = 20
    #: while its Scheduler-Location is not yet queryable on the gateway, ``serve`` warns every N s
    locate_warn_s: float = 10.0

    @classmethod
    def from_env(cls, **overrides: Any) -> SchedulerConfig:
        return _from_env(cls, "PYAO_SU_", **overrides)


@dataclass(frozen=True)
class CUConfig:
    """The compute unit. Environment prefix ``PYAO_CU_``."""

    host: str = "127.0.0.1"
    port: int = 6363
    #: result store: ``sqlite:///path.db`` (default under data_dir), ``sqlite://:memory:`` or ``postgresql://…``
    db: str = ""
    data_dir: Path = Path.home() / ".pyao" / "cu"
    #: the CU's key file (RSA JWK or Ed25519 OKP JWK); created if missing
    wallet: Path = Path.home() / ".pyao" / "cu" / "wallet.json"
    #: key type generated when ``wallet`` does not exist: "arweave" (RSA) or "ed25519"
    wallet_type: str = "ed25519"
    #: where process, module and Scheduler-Location items and block metadata are read
    gateway_url: str = "http://127.0.0.1:4000"
    #: the most a process may ask with Compute-Limit (native Lua: VM instructions per message)
    max_compute: int = 10_000_000_000
    #: the most a process may ask with Memory-Limit, bytes (official PROCESS_WASM_MEMORY_MAX_LIMIT: 1 GB)
    max_memory: int = 1024 * MiB
    #: schedule page size asked of the SU (official LOAD_MESSAGES_PAGE_SIZE)
    page_size: int = 1000
    #: VM worker processes (each a core's worth of evaluation): -1 = one per CPU core,
    #: 0 = no worker processes, evaluate on ``vm_threads`` threads of the CU's own process
    workers: int = -1
    #: threads that run VM calls when ``workers`` is 0 (one evaluation at a time per process)
    vm_threads: int = 4
    #: process checkpoints: a process is checkpointed after this many evaluations since its last
    #: checkpoint (and when it leaves memory, and when the CU stops); 0 = never
    checkpoint_every: int = 2000
    #: checkpoint directory ("" = ``data_dir/checkpoints``)
    checkpoint_dir: str = ""
    #: hot processes are kept in memory up to this many bytes in all (least recently used leave first)
    live_memory: int = 4096 * MiB
    #: and up to this many processes
    max_live: int = 10_000
    #: trailing cron ticks are generated up to the SU's clock minus this, so a message still
    #: being committed with an earlier timestamp is not overtaken
    cron_lag_ms: int = 1000
    #: largest accepted dry-run body, bytes
    max_dry_run_bytes: int = 1 * MiB
    #: devices processes may use (``pyao.devices.DEVICES``), comma-separated, in build order; "" for none.
    #: ``llm@1.0`` (docs/llm.md) reads models through ``weavedrive@1.0``, so it comes after it
    devices: str = "weavedrive@1.0,llm@1.0"
    #: bytes of item data WeaveDrive keeps in memory (an LRU of 64 KiB blocks, shared by all processes)
    weavedrive_cache_bytes: int = 64 * MiB
    #: where WeaveDrive reads data, headers and attestations ("" = gateway_url)
    weavedrive_gateway_url: str = ""

    @classmethod
    def from_env(cls, **overrides: Any) -> CUConfig:
        return _from_env(cls, "PYAO_CU_", **overrides)

    @property
    def worker_count(self) -> int:
        """VM worker processes to start (0 = evaluate on threads of this process)."""
        return (os.cpu_count() or 1) if self.workers < 0 else self.workers

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint_dir) if self.checkpoint_dir else self.data_dir / "checkpoints"


@dataclass(frozen=True)
class MUConfig:
    """The messenger unit. Environment prefix ``PYAO_MU_``."""

    host: str = "127.0.0.1"
    port: int = 3005
    #: work queue: ``sqlite:///path.db`` (default under data_dir), ``sqlite://:memory:`` or ``postgresql://…``
    db: str = ""
    data_dir: Path = Path.home() / ".pyao" / "mu"
    #: the MU's key file (RSA JWK or Ed25519 OKP JWK); created if missing. Pushed messages are signed with it
    wallet: Path = Path.home() / ".pyao" / "mu" / "wallet.json"
    #: key type generated when ``wallet`` does not exist: "arweave" (RSA) or "ed25519"
    wallet_type: str = "ed25519"
    #: where processes and Scheduler-Location items are read, and messages to wallets are stored
    gateway_url: str = "http://127.0.0.1:4000"
    #: the compute unit whose results the MU cranks
    cu_url: str = "http://127.0.0.1:6363"
    #: largest accepted message or process item, bytes
    max_item_bytes: int = 16 * MiB
    #: crank jobs run at the same time
    workers: int = 8
    #: a job is given up (and kept as failed) after this many attempts
    max_attempts: int = 12
    #: first retry delay, seconds; doubled on each attempt up to ``retry_cap_s``
    retry_base_s: float = 0.25
    retry_cap_s: float = 30.0
    #: timeout of one call to another unit, seconds
    request_timeout_s: float = 30.0
    #: monitored processes are polled for cron results this often, seconds (official: 10)
    cron_interval_s: float = 10.0
    #: cron results asked per poll (official: 50)
    cron_page: int = 50
    #: also crank a new process's own (boot) result (official SPAWN_PUSH_ENABLED, default off)
    spawn_push: bool = False

    @classmethod
    def from_env(cls, **overrides: Any) -> MUConfig:
        return _from_env(cls, "PYAO_MU_", **overrides)
