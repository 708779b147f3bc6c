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
from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.checks import _bool, _int, _unknown
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import media as md
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import setup as su

MODULE = "configmgr.sql_upgrade.sql_media"
OPTIONS = ("dest", "src", "url", "url_username", "url_password", "validate_certs", "share_path", "share_user",
           "share_password", "checksum", "checksum_file", "chunk_size_mib", "force")
display = Display()


def _text(args: dict[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        hint = " (quote it in YAML: an unquoted value of digits is read as a number)" if isinstance(value, int) else ""
        raise PlanError(f"option {name} must be a non-empty string{hint}")
    return value


def validate_media_args(args: dict[str, Any]) -> dict[str, Any]:
    """The options with defaults applied; PlanError names the first bad one (nothing is sent to the host)."""
    _unknown(args, OPTIONS)
    sources = [name for name in ("src", "url", "share_path") if args.get(name) is not None]
    if len(sources) != 1:
        raise PlanError("give exactly one of src (a file or folder on the controller), url (the host downloads it) "
                        f"and share_path (the host copies it with share_user / share_password); got "
                        f"{', '.join(sources) or 'none'}")
    opts: dict[str, Any] = {name: _text(args, name) for name in OPTIONS if name not in
                            ("validate_certs", "chunk_size_mib", "force")}
    opts["dest"] = md.validate_dest(args.get("dest"))
    opts["validate_certs"] = _bool("validate_certs", args.get("validate_certs", True))
    opts["force"] = _bool("force", args.get("force", False))
    opts["chunk_size_mib"] = _int("chunk_size_mib", args.get("chunk_size_mib", md.DEFAULT_CHUNK_MIB), 1, 1024)
    if opts["url"] is not None:
        md.validate_url(opts["url"])
    elif opts["url_username"] or opts["url_password"]:
        raise PlanError("options url_username and url_password are for url")
    if opts["share_path"] is not None:
        opts["share_path"] = md.validate_share_path(opts["share_path"])
        if bool(opts["share_user"]) != bool(opts["share_password"]):
            raise PlanError("options share_user and share_password go together: a WinRM session cannot hand the "
                            "connection's own credentials to a share (the double hop)")
    elif opts["share_user"] or opts["share_password"]:
        raise PlanError("options share_user and share_password are for share_path")
    if opts["checksum"] is not None:
        opts["checksum"] = md.parse_checksum(opts["checksum"])
    if opts["checksum"] and opts["checksum_file"]:
        raise PlanError("options checksum and checksum_file are mutually exclusive")
    return opts


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


class ActionModule(ActionBase):
    TRANSFERS_FILES = False  # the chunks go to dest.partial, not to a remote temp folder
    _requires_connection = True

    def _call(self, phase: str, opts: dict[str, Any], task_vars: dict[str, Any], **internal: Any) -> dict[str, Any]:
        return self._execute_module(module_name=MODULE, module_args={**opts, "_phase": phase, **internal},
                                    task_vars=task_vars)

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        host = str(task_vars.get("inventory_hostname", "?"))
        args = dict(self._task.args)
        kinds = (("controller", "src"), ("url", "url"), ("share", "share_path"))
        given = [(kind, args.get(name)) for kind, name in kinds if args.get(name) is not None]
        result.update({"dest": str(args.get("dest")), "source": given[0][0] if given else "",
                       "location": str(given[0][1]) if given else ""})
        try:
            opts = validate_media_args(args)
            local = self._local_source(opts)
            checksum_map = self._checksum_map(opts)
        except (PlanError, AnsibleError) as exc:
            return {**result, "failed": True, "changed": False,
                    "msg": f"{host}: sql_media: {exc}; nothing was sent to the host"}
        kind, location, names = local if local else self._remote_source(opts)
        try:
            expected = md.expected_hashes(names, opts["checksum"], checksum_map) if names else {}
        except PlanError as exc:
            return {**result, "failed": True, "changed": False,
                    "msg": f"{host}: sql_media: {exc}; nothing was sent to the host"}
        if kind != "controller" and not names and checksum_map:
            expected = checksum_map
        result.update({"dest": opts["dest"], "source": kind, "location": location})
        if kind == "controller":
            # Controller media is proven against its checksum before the host is contacted at all.
            self._local_hashes = {name: _sha256_file(os.path.join(self._local_root, *name.split("\\")))
                                  for name in names}
            bad = md.hash_problems(expected, self._local_hashes)
            if bad:
                return {**result, "failed": True, "changed": False,
                        "msg": f"{host}: the source on the controller does not match its checksum: {'; '.join(bad)}; "
                               "nothing was sent to the host"}
        outcome = self._stage(host, opts, kind, location, names, expected, task_vars)
        result.update(outcome)
        return result

    # -- sources ---------------------------------------------------------------------------------------------
    def _local_source(self, opts: dict[str, Any]) -> tuple[str, str, list[str]] | None:
        """('controller', absolute path, relative file names) for src; None for the host's own sources."""
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
            self._local_root = path
            return "controller", path, names
        self._local_root = os.path.dirname(path)
        return "controller", path, [os.path.basename(path)]

    @staticmethod
    def _remote_source(opts: dict[str, Any]) -> tuple[str, str, list[str]]:
        if opts["url"] is not None:
            name = opts["url"].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "media.iso"
            return "url", opts["url"], [md.normalize_relative(name, "url")]
        path = opts["share_path"]
        base = ntpath.basename(path)
        return "share", path, [base] if md.is_iso(base) else []

    def _checksum_map(self, opts: dict[str, Any]) -> dict[str, str] | None:
        if opts["checksum_file"] is None:
            return None
        path = self._find_needle("files", opts["checksum_file"])
        with open(path, encoding="utf-8") as handle:
            return md.parse_checksum_file(handle.read(), f"checksum_file {path}")

    # -- the run ---------------------------------------------------------------------------------------------
    def _stage(self, host: str, opts: dict[str, Any], kind: str, location: str, names: list[str],
               expected: dict[str, str], task_vars: dict[str, Any]) -> dict[str, Any]:
        dest = opts["dest"]
        gathered = self._call("gather", opts, task_vars)
        if gathered.get("failed"):
            return {"failed": True, "changed": False, "msg": f"{host}: reading {dest} failed: {gathered.get('msg')}"}
        if gathered.get("free_bytes") is None:
            return {"failed": True, "changed": False,
                    "msg": f"{host}: the drive of {dest} is not there; nothing was staged. Choose another dest"}
        why_not = md.staged_matches(gathered.get("marker_text"), kind, location, expected)
        restaging: str | None = None
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
            restaging = f"{dest}: {why_not}; staging it again"
        elif gathered.get("dest_exists") and not gathered.get("dest_empty"):
            if gathered.get("marker_text") is None:
                return {"failed": True, "changed": False,
                        "msg": f"{host}: {dest} holds files that this collection did not stage; nothing was "
                               "changed. Choose an empty or new folder as dest (files of yours are never replaced)"}
            if not opts["force"]:
                return {"failed": True, "changed": False,
                        "msg": f"{host}: {dest} holds other SQL Server media ({why_not}); nothing was changed. Set "
                               "force=true to replace it, or choose another dest"}
        result: dict[str, Any] = {"changed": True, "msg": f"{dest} would be staged from {kind} {location}"}
        if restaging:
            result["warnings"] = [f"{host}: {restaging}"]
        iso = len(names) == 1 and md.is_iso(names[0])
        if kind == "controller":
            return self._from_controller(host, opts, names, expected, iso, gathered, task_vars, result, location)
        if self._task.check_mode:
            return result
        needed = 2 if (iso or kind == "url") else 1
        staged_out = self._call("stage", opts, task_vars, _source=kind, _file_name=names[0] if names else None,
                                _space_needed=needed)
        return self._finish(host, opts, kind, location, expected, iso or (kind == "url" and md.is_iso(names[0])),
                            staged_out, task_vars, result, None)

    def _from_controller(self, host: str, opts: dict[str, Any], names: list[str], expected: dict[str, str], iso: bool,
                         gathered: dict[str, Any], task_vars: dict[str, Any], result: dict[str, Any],
                         location: str) -> dict[str, Any]:
        dest = opts["dest"]
        root = self._local_root
        paths = [os.path.join(root, *name.split("\\")) for name in names]
        total = sum(os.path.getsize(p) for p in paths)
        problem = md.space_problem(md.space_needed(total, iso), gathered.get("free_bytes"), dest)
        if problem:
            return {"failed": True, "changed": False, "msg": f"{host}: {problem}; nothing was copied"}
        chunk_bytes = opts["chunk_size_mib"] * 1024 * 1024
        local_hashes = self._local_hashes
        files, todo = [], []
        for index, (name, path) in enumerate(zip(names, paths, strict=True)):
            chunks = md.chunks_of(_reader(path), index, os.path.getsize(path), chunk_bytes)
            files.append({"name": name, "chunks": [c.name for c in chunks]})
            todo += [(path, c) for c in md.chunks_to_send(chunks, gathered.get("partial_chunks") or {})]
        all_chunks = sum(len(f["chunks"]) for f in files)
        result.update({"bytes": total, "chunks_sent": len(todo), "chunks_resumed": all_chunks - len(todo),
                       "sha256": local_hashes})
        if self._task.check_mode:
            return result
        if not gathered.get("partial_chunks"):
            prepared = self._call("gather", opts, task_vars, _prepare=True)
            if prepared.get("failed"):
                return {"failed": True, "changed": False,
                        "msg": f"{host}: preparing {dest}{md.PARTIAL_SUFFIX} failed: {prepared.get('msg')}"}
        remote_dir = dest + md.PARTIAL_SUFFIX + "\\chunks\\"
        step = max(1, len(todo) // 10)
        with tempfile.TemporaryDirectory(prefix="sql_media-") as scratch:
            for number, (path, chunk) in enumerate(todo, 1):
                piece = os.path.join(scratch, chunk.name)
                with open(path, "rb") as src, open(piece, "wb") as out:
                    src.seek(chunk.offset)
                    out.write(src.read(chunk.length))
                try:
                    self._connection.put_file(piece, remote_dir + chunk.name)
                except (AnsibleError, OSError) as exc:
                    return {**result, "failed": True, "changed": True, "chunks_sent": number - 1,
                            "msg": f"{host}: copying chunk {number} of {len(todo)} to {remote_dir} failed ({exc}). "
                                   f"Nothing reached {dest}; run the task again to resume with the chunks that "
                                   "arrived"}
                os.remove(piece)
                if number % step == 0 or number == len(todo):
                    display.display(f"{host}: sql_media: {number}/{len(todo)} chunks sent to {remote_dir}")
        staged_out = self._call("stage", opts, task_vars, _source="controller", _files=files)
        return self._finish(host, opts, "controller", location, expected or local_hashes, iso, staged_out, task_vars,
                            result, local_hashes)

    def _finish(self, host: str, opts: dict[str, Any], kind: str, location: str, expected: dict[str, str], iso: bool,
                staged_out: dict[str, Any], task_vars: dict[str, Any], result: dict[str, Any],
                local_hashes: dict[str, str] | None) -> dict[str, Any]:
        dest = opts["dest"]
        if staged_out.get("failed"):
            self._call("discard", opts, task_vars)
            hint = ""
            if kind == "share" and not opts["share_user"]:
                hint = (". Without share_user and share_password the host reaches the share with no credentials: a "
                        "WinRM session cannot pass the connection's own on (the double hop)")
            return {**result, "failed": True, "changed": False,
                    "msg": f"{host}: staging from {kind} {location} failed: {staged_out.get('msg')}; nothing reached "
                           f"{dest} ({dest}{md.PARTIAL_SUFFIX} was removed){hint}"}
        hashes = {str(k): str(v) for k, v in dict(staged_out.get("hashes") or {}).items()}
        bad = md.hash_problems(expected, hashes)
        if bad:
            self._call("discard", opts, task_vars)
            return {**result, "failed": True, "changed": False, "sha256": hashes,
                    "msg": f"{host}: the media from {kind} {location} does not match its checksum: {'; '.join(bad)}. "
                           f"It was removed; nothing reached {dest}"}
        record = md.source_record(kind, location, expected or hashes)
        committed = self._call("commit", opts, task_vars, _iso=iso, _marker=record)
        if committed.get("failed"):
            self._call("discard", opts, task_vars)
            return {**result, "failed": True, "changed": True,
                    "msg": f"{host}: the media was fetched and verified but could not be put in {dest}: "
                           f"{committed.get('msg')}. Nothing is in {dest} that a later step could take for media"}
        result.update({"sha256": hashes, "bytes": staged_out.get("bytes", result.get("bytes")),
                       "msg": f"{dest} staged from {kind} {location}"})
        if not expected:
            result.setdefault("warnings", []).append(
                f"{host}: the media from {location} was staged without a checksum to prove it; give checksum or "
                "checksum_file")
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
