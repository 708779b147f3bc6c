# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sql_media (KB 256202 step 1): validate, gather what dest holds, decide with
plugin_utils/_sql/media.py whether the media there can be used as it is, and otherwise stage it:
controller files in chunks (only the chunks the host does not hold yet), or a URL / share the host reads itself;
then prove the hashes and only then let the host move the media to dest."""

from __future__ import annotations

import hashlib
import ntpath
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible.errors import AnsibleError

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.base import (
    SLICE_SECONDS,
    Call,
    ExecutorAction,
    Failed,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.progress import rate, size
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import media as md
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import setup as su

SOURCES = (("controller", "src"), ("url", "url"), ("share", "share_path"))


@dataclass(frozen=True)
class Source:
    """Where the media comes from: kind (controller, url, share), location, the relative file names, and for the
    controller the folder the names are relative to and their hashes."""

    kind: str
    location: str
    names: list[str]
    root: str = ""
    hashes: dict[str, str] = field(default_factory=dict)

    def path(self, name: str) -> str:
        return os.path.join(self.root, *name.split("\\"))


def _keys(result: dict[str, Any], **more: Any) -> dict[str, Any]:
    """The result keys a failure keeps (its own changed and msg are the failure's)."""
    return {**{k: v for k, v in result.items() if k not in ("changed", "msg")}, **more}


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _reader(path: str) -> Callable[[int, int], bytes]:
    def read(offset: int, length: int) -> bytes:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(length)
    return read


class ActionModule(ExecutorAction):
    TRANSFERS_FILES = False  # the chunks go to dest.partial, not to a remote temp folder
    MODULE = "sql_media"

    def always(self, args: Any) -> dict[str, Any]:
        given = [(kind, args.get(name)) for kind, name in SOURCES if args.get(name) is not None]
        return {"dest": str(args.get("dest")), "source": given[0][0] if given else "",
                "location": str(given[0][1]) if given else ""}

    def work(self, opts: dict[str, Any], call: Call) -> dict[str, Any]:
        try:
            source = self._local_source(opts) or self._remote_source(opts)
            checksum_map = self._checksum_map(opts)
            expected = md.expected_hashes(source.names, opts["checksum"], checksum_map) if source.names else {}
        except (PlanError, AnsibleError) as exc:
            raise Failed(f"sql_media: {exc}; nothing was sent to the host") from None
        if source.kind != "controller" and not source.names and checksum_map:
            expected = checksum_map
        result = {"dest": opts["dest"], "source": source.kind, "location": source.location}
        if source.kind == "controller":
            # Controller media is proven against its checksum before the host is contacted at all.
            source = Source(source.kind, source.location, source.names, source.root,
                            {name: _sha256_file(source.path(name)) for name in source.names})
            bad = md.hash_problems(expected, source.hashes)
            if bad:
                raise Failed(f"the source on the controller does not match its checksum: {'; '.join(bad)}; nothing "
                             "was sent to the host", **result)
        result.update(self._stage(opts, source, expected, call))
        return result

    # -- sources ---------------------------------------------------------------------------------------------
    def _local_source(self, opts: dict[str, Any]) -> Source | None:
        """The controller's src, or None for the host's own sources."""
        if opts["src"] is None:
            return None
        path = self._find_needle("files", opts["src"])
        if os.path.isdir(path):
            names = []
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    rel = os.path.relpath(os.path.join(root, name), path)
                    names.append(md.normalize_relative(rel, "src"))
            if not names:
                raise PlanError(f"src {path} holds no file")
            return Source("controller", path, names, path)
        return Source("controller", path, [os.path.basename(path)], os.path.dirname(path))

    @staticmethod
    def _remote_source(opts: dict[str, Any]) -> Source:
        if opts["url"] is not None:
            name = opts["url"].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "media.iso"
            return Source("url", opts["url"], [md.normalize_relative(name, "url")])
        path = opts["share_path"]
        base = ntpath.basename(path)
        return Source("share", path, [base] if md.is_iso(base) else [])

    def _checksum_map(self, opts: dict[str, Any]) -> dict[str, str] | None:
        if opts["checksum_file"] is None:
            return None
        path = self._find_needle("files", opts["checksum_file"])
        with open(path, encoding="utf-8") as handle:
            return md.parse_checksum_file(handle.read(), f"checksum_file {path}")

    # -- the run ---------------------------------------------------------------------------------------------
    def _stage(self, opts: dict[str, Any], source: Source, expected: dict[str, str], call: Call) -> dict[str, Any]:
        dest = opts["dest"]
        gathered = call.executor("gather", opts)
        if gathered.get("failed"):
            raise Failed(f"reading {dest} failed: {gathered.get('msg')}")
        if gathered.get("free_bytes") is None:
            raise Failed(f"the drive of {dest} is not there; nothing was staged. Choose another dest")
        why_not = md.staged_matches(gathered.get("marker_text"), source.kind, source.location, expected)
        manifest = md.parse_manifest(gathered.get("manifest_text"))
        staged = dict(gathered.get("staged_hashes") or {})
        if why_not is None:
            broken = md.hash_problems(manifest, staged) if manifest else ["its manifest (files.sha256) is missing"]
            extra = sorted(set(k.lower() for k in staged) - set(k.lower() for k in manifest))
            if extra:
                broken.append(f"{len(extra)} file(s) not in its manifest, first {extra[0]}")
            if not broken:
                return self._report(gathered, changed=False, msg=f"{dest} already holds this media, verified "
                                    f"({len(manifest)} files)")
            why_not = "it does not hash as it did when staged: " + "; ".join(broken[:3])
            call.warnings.append(f"{dest}: {why_not}; staging it again")
        elif gathered.get("dest_exists") and not gathered.get("dest_empty"):
            if gathered.get("marker_text") is None:
                raise Failed(f"{dest} holds files that this collection did not stage; nothing was changed. Choose an "
                             "empty or new folder as dest (files of yours are never replaced)")
            if not opts["force"]:
                raise Failed(f"{dest} holds other SQL Server media ({why_not}); nothing was changed. Set force=true "
                             "to replace it, or choose another dest")
        result: dict[str, Any] = {"changed": True, "msg": f"{dest} would be staged from {source.kind} "
                                                          f"{source.location}"}
        iso = len(source.names) == 1 and md.is_iso(source.names[0])
        if source.kind == "controller":
            return self._from_controller(opts, source, expected, iso, gathered, result, call)
        if call.check_mode:
            return result
        needed = 2 if (iso or source.kind == "url") else 1
        staged_out = self._pull(opts, source, needed, call)
        iso = iso or (source.kind == "url" and md.is_iso(source.names[0]))
        return self._finish(opts, source, expected, iso, staged_out, result, call)

    @staticmethod
    def _pull(opts: dict[str, Any], source: Source, needed: int, call: Call) -> dict[str, Any]:
        """The host's own pull from the URL or the share, in slices: each slice that ends before the last byte
        prints the bytes so far, of all, and the rate, and the next one goes on from there (a range request, an
        offset into the share's file)."""
        args: dict[str, Any] = {"_source": source.kind, "_file_name": source.names[0] if source.names else None,
                                "_space_needed": needed, "_slice": SLICE_SECONDS}
        staged_out = call.executor("stage", opts, **args)
        pulled, seconds = 0, 0.0
        while staged_out.get("pending") and not staged_out.get("failed"):
            pending = staged_out["pending"]
            pulled += int(pending.get("bytes_pulled") or 0)
            seconds += float(pending.get("seconds") or 0)
            done, total = int(pending.get("bytes_done") or 0), int(pending.get("bytes_total") or 0)
            share = f" ({done * 100 // total}%)" if total > 0 else ""
            call.say(f"{size(done)} of {size(total)}{share} pulled from {source.kind} {source.location} to "
                     f"{opts['dest']}{md.PARTIAL_SUFFIX}, {rate(pulled, seconds)}")
            staged_out = call.executor("stage", opts, **args, _resume=True)
        return staged_out

    def _from_controller(self, opts: dict[str, Any], source: Source, expected: dict[str, str], iso: bool,
                         gathered: dict[str, Any], result: dict[str, Any], call: Call) -> dict[str, Any]:
        dest = opts["dest"]
        paths = [source.path(name) for name in source.names]
        total = sum(os.path.getsize(p) for p in paths)
        problem = md.space_problem(md.space_needed(total, iso), gathered.get("free_bytes"), dest)
        if problem:
            raise Failed(f"{problem}; nothing was copied")
        chunk_bytes = opts["chunk_size_mib"] * 1024 * 1024
        files, todo = [], []
        for index, (name, path) in enumerate(zip(source.names, paths, strict=True)):
            chunks = md.chunks_of(_reader(path), index, os.path.getsize(path), chunk_bytes)
            files.append({"name": name, "chunks": [c.name for c in chunks]})
            todo += [(path, c) for c in md.chunks_to_send(chunks, gathered.get("partial_chunks") or {})]
        all_chunks = sum(len(f["chunks"]) for f in files)
        result.update({"bytes": total, "chunks_sent": len(todo), "chunks_resumed": all_chunks - len(todo),
                       "sha256": source.hashes})
        if call.check_mode:
            return result
        if not gathered.get("partial_chunks"):
            prepared = call.executor("gather", opts, _prepare=True)
            if prepared.get("failed"):
                raise Failed(f"preparing {dest}{md.PARTIAL_SUFFIX} failed: {prepared.get('msg')}")
        remote_dir = dest + md.PARTIAL_SUFFIX + "\\chunks\\"
        step = max(1, len(todo) // 10)
        to_send = sum(chunk.length for _path, chunk in todo)
        sent, began, said = 0, time.monotonic(), time.monotonic()
        with tempfile.TemporaryDirectory(prefix="sql_media-") as scratch:
            for number, (path, chunk) in enumerate(todo, 1):
                piece = os.path.join(scratch, chunk.name)
                with open(path, "rb") as src, open(piece, "wb") as out:
                    src.seek(chunk.offset)
                    out.write(src.read(chunk.length))
                try:
                    self._connection.put_file(piece, remote_dir + chunk.name)
                except (AnsibleError, OSError) as exc:
                    raise Failed(f"copying chunk {number} of {len(todo)} to {remote_dir} failed ({exc}). Nothing "
                                 f"reached {dest}; run the task again to resume with the chunks that arrived",
                                 changed=True, **_keys(result, chunks_sent=number - 1)) from None
                os.remove(piece)
                sent += chunk.length
                now = time.monotonic()
                # Every tenth of the chunks, and at least every SLICE_SECONDS on a slow link.
                if number % step == 0 or number == len(todo) or now - said >= SLICE_SECONDS:
                    said = now
                    call.say(f"{number}/{len(todo)} chunks sent to {remote_dir}: {size(sent)} of {size(to_send)}, "
                             f"{rate(sent, now - began)}")
        staged_out = call.executor("stage", opts, _source="controller", _files=files)
        return self._finish(opts, source, expected or source.hashes, iso, staged_out, result, call)

    def _finish(self, opts: dict[str, Any], source: Source, expected: dict[str, str], iso: bool,
                staged_out: dict[str, Any], result: dict[str, Any], call: Call) -> dict[str, Any]:
        dest, kind, location = opts["dest"], source.kind, source.location
        if staged_out.get("failed"):
            call.executor("discard", opts)
            hint = ""
            if kind == "share" and not opts["share_user"]:
                hint = (". Without share_user and share_password the host reaches the share with no credentials: a "
                        "WinRM session cannot pass the connection's own on (the double hop)")
            raise Failed(f"staging from {kind} {location} failed: {staged_out.get('msg')}; nothing reached {dest} "
                         f"({dest}{md.PARTIAL_SUFFIX} was removed){hint}", **_keys(result))
        hashes = {str(k): str(v) for k, v in dict(staged_out.get("hashes") or {}).items()}
        bad = md.hash_problems(expected, hashes)
        if bad:
            call.executor("discard", opts)
            raise Failed(f"the media from {kind} {location} does not match its checksum: {'; '.join(bad)}. It was "
                         f"removed; nothing reached {dest}", **_keys(result, sha256=hashes))
        record = md.source_record(kind, location, expected or hashes)
        committed = call.executor("commit", opts, _iso=iso, _marker=record)
        if committed.get("failed"):
            call.executor("discard", opts)
            raise Failed(f"the media was fetched and verified but could not be put in {dest}: {committed.get('msg')}. "
                         f"Nothing is in {dest} that a later step could take for media", changed=True, **_keys(result))
        result.update({"sha256": hashes, "bytes": staged_out.get("bytes", result.get("bytes")),
                       "msg": f"{dest} staged from {kind} {location}"})
        if not expected:
            call.warnings.append(f"the media from {location} was staged without a checksum to prove it; give "
                                 "checksum or checksum_file")
        return {**result, **self._report(committed, changed=True, msg=result["msg"])}

    @staticmethod
    def _report(read: dict[str, Any], changed: bool, msg: str) -> dict[str, Any]:
        version = md.version_from_resource(read.get("setup_version"))
        out: dict[str, Any] = {"changed": changed, "msg": msg, "setup_version": version,
                               "product_key_in_media": bool(read.get("product_key_in_media"))}
        if version:
            out["product"] = su.product_name(version)
            out["wmi_during_setup"] = "running" if su.setup_needs_wmi(version) else "stopped"
        return out
