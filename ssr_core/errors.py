"""The project's error types: one root, a few kinds, each message naming the fix."""

from __future__ import annotations

from pathlib import Path


class SsrError(Exception):
    """Root of every error the project raises on purpose."""


class ConfigError(SsrError, ValueError):
    """A recipe, option or config value is invalid."""


class InputError(SsrError):
    """An input file cannot be used; carries the path and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MissingAssetError(SsrError):
    """A needed file (weights, data set) is absent; says where to put it and how to get it."""

    def __init__(
        self,
        file: str,
        folder: str | Path,
        url: str | None = None,
        sha256: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.file, self.folder, self.url, self.sha256 = file, str(folder), url, sha256
        parts = [f"missing {file}: put it in {self.folder}"]
        if url:
            parts.append(f"download it from {url}")
        if sha256:
            parts.append(f"sha256 {sha256}")
        if hint:
            parts.append(hint)
        super().__init__("; ".join(parts))


class DownloadError(SsrError):
    """Every URL of a file failed, or a download came back with the wrong size or checksum."""


class ShardsFailedError(SsrError):
    """Some shards of a `degrade build --cluster` failed; the others are kept for a rerun."""

    def __init__(self, out: str, failures: dict[str, str]) -> None:
        self.out, self.failures = out, failures
        lines = [f"  {name}: {error}" for name, error in sorted(failures.items())]
        super().__init__(f"{len(failures)} shard(s) failed (after a retry); the finished shards "
                         f"in {out} are kept: rerun the same command to build the rest\n"
                         + "\n".join(lines))


class NothingBuiltError(SsrError):
    """Every input of a build was skipped: no shard, so the build failed; lists each reason."""

    SHOWN = 20  # inputs listed in the message; the rest are counted (all are in the record)

    def __init__(self, record: str | Path, skipped: list[dict[str, str]]) -> None:
        self.record, self.skipped = str(record), skipped
        lines = [f"  {s['path']}: {s['reason']}" for s in skipped[: self.SHOWN]]
        if len(skipped) > self.SHOWN:
            lines.append(f"  ... and {len(skipped) - self.SHOWN} more")
        super().__init__(f"no sample was built: all {len(skipped)} input(s) were skipped "
                         f"(reasons also in {self.record}):\n" + "\n".join(lines))
