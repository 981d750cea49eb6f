"""Audit commands (审计命令): ``verify``, ``export``, ``verify-bundle``, ``checkpoint``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from audit import bundle, checkpoints
from audit import verify as verify_module
from store.config import database_url
from store.db import require_store

err = Console(stderr=True, highlight=False)  # the progress bar's; errors go through _fail, which never wraps


def _fail(message: str) -> typer.Exit:
    """``ledger: message`` as one line on stderr, whatever the terminal's width, and exit 1."""
    typer.echo(f"ledger: {' '.join(message.split())}", err=True)
    return typer.Exit(1)


def _keys(paths: list[Path] | None) -> list[Ed25519PublicKey] | None:
    """The trusted public keys (PEM files; several across a key's change), or None for the default."""
    if not paths:
        return None
    try:
        return [checkpoints.load_public_key(path.read_bytes()) for path in paths]
    except (OSError, ValueError, TypeError) as e:
        raise _fail(f"--key: {e}") from None


def _saved(paths: list[Path] | None) -> list[checkpoints.Checkpoint]:
    """Checkpoints an auditor kept (JSON, as ``GET /v1/audit/checkpoints/latest`` answers)."""
    found = []
    for path in paths or []:
        try:
            found.append(checkpoints.Checkpoint.from_dict(orjson.loads(path.read_bytes())))
        except (OSError, ValueError) as e:
            raise _fail(f"--checkpoint {path}: {e}") from None
    return found


KeyOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--key", help="a trusted public key (PEM), repeatable across a key's change; default: the signing key file"
    ),
]
SavedOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--checkpoint",
        help="a checkpoint kept outside the store (JSON of GET /v1/audit/checkpoints/latest), repeatable: the log "
        "must still hold what it signed",
    ),
]


def verify(
    key: KeyOption = None,
    saved: SavedOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Check the whole store's integrity; exit 0 if intact, 1 naming the first bad position. Says how far the log is
    signed, and by whose key: events after the last checkpoint are proved against nothing yet."""
    url = require_store(database_url())
    keys, kept = _keys(key), _saved(saved)
    with Progress(
        TextColumn("verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet or not err.is_terminal,  # a bar in a log is noise (and rich ends it with a blank line)
        transient=True,
    ) as bar:
        task = bar.add_task("verify", total=None)
        result = verify_module.verify(
            url, lambda done, total: bar.update(task, completed=done, total=total), keys, saved=kept
        )
    if result.ok:
        typer.echo(f"intact: {result.checked} events, head {result.head}")
        typer.echo(_signed(result))
        _note_early(result.recorded_early, result.notes)
        return
    raise _fail(f"first bad position {result.first_bad_position}: {result.reason}")


def _note_early(count: int, notes: tuple[str, ...]) -> None:
    """Name the events recorded before a checkpoint they follow was signed: a finding for the auditor (back-dated,
    or a writer's clock behind the signer's), on stderr; the chain itself is intact."""
    if count:
        typer.echo(f"ledger: note: {count} event(s) recorded before a checkpoint they follow was signed:", err=True)
        for note in notes:
            typer.echo(f"ledger: note: {note}", err=True)


def _signed(result: verify_module.VerifyResult) -> str:
    """How far an intact log is signed, when, and whose keys vouched for it."""
    cp = result.signed
    if cp is None:
        return "signed: no checkpoint covers these events yet (`ledger checkpoint` signs them)"
    after = result.checked - cp.size
    tail = f"; {after} event{'s' if after > 1 else ''} after it not yet signed" if after else ""
    return (
        f"signed: the first {cp.size} events, checkpoint of {cp.timestamp} by key {cp.key_id} "
        f"({verify_module.KEY_SOURCES[result.keys]}){tail}"
    )


def export(
    out: Annotated[Path, typer.Option("--out", help="bundle file to write (JSON Lines)")],
    start: Annotated[int | None, typer.Option("--from", min=1, help="first position")] = None,
    stop: Annotated[int | None, typer.Option("--to", min=1, help="last position")] = None,
) -> None:
    """Write a self-contained audit bundle."""
    try:
        header = bundle.export(require_store(database_url()), out, start, stop)
    except bundle.BundleError as e:
        raise _fail(str(e)) from None
    typer.echo(
        f"wrote {out}: positions {header['from']}..{header['to']}, "
        f"proved against checkpoint {header['proof_checkpoint']['size']}"
    )


def verify_bundle(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="bundle written by `ledger export`")],
    recompute: Annotated[
        bool | None,
        typer.Option(
            "--recompute/--no-recompute",
            help="rebuild the stated scores, triggers and deductions from the events and compare (default: when the "
            "bundle holds the log from its start)",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        list[Path] | None,
        typer.Option("--key", help="a trusted public key (PEM) instead of the bundled one; repeatable across a change"),
    ] = None,
) -> None:
    """Check a bundle offline, with no store and no server."""
    keys = _keys(key)
    try:
        result = bundle.verify_bundle(file, recompute=recompute, trusted_keys=keys)
    except bundle.BundleError as e:
        result = bundle.BundleResult(False, 0, None, str(e))
    if result.ok:
        stated = (
            "stated projections recomputed and equal"
            if result.recomputed
            else f"stated projections NOT checked ({result.unchecked})"
        )
        part = "" if result.last == result.signed_size else f" (the signed log holds {result.signed_size})"
        signers = ", ".join(result.signed_by)
        whose = (
            "the trusted key given" if result.trusted else "the bundle's own key: compare it with the audit office's"
        )
        typer.echo(
            f"bundle intact: {result.events} events, positions {result.first}..{result.last}{part}; {stated}; "
            f"checkpoints signed by key {signers} ({whose})"
        )
        _note_early(result.recorded_early, result.notes)
        return
    where = f"position {result.first_bad_position}: " if result.first_bad_position else ""
    raise _fail(f"bundle check failed: {where}{result.reason}")


def checkpoint() -> None:
    """Sign the log's current Merkle root now (a signed tree head)."""
    try:
        cp = checkpoints.take_checkpoint(require_store(database_url()))
    except checkpoints.CheckpointRefused as e:
        raise _fail(f"checkpoint refused: {e}") from None
    typer.echo(f"checkpoint size {cp.size} root {cp.root} key {cp.key_id}")


def public_key(
    out: Annotated[Path | None, typer.Option("--out", help="write the PEM here rather than to stdout")] = None,
) -> None:
    """Print the checkpoint signing key's public half (PEM) and its id: what the audit office hands auditors, whose
    `ledger verify-bundle --key` then trusts it rather than the key a bundle carries."""
    path = checkpoints.signing_key_path()
    if not path.is_file():
        raise _fail(f"no signing key at {path} (LEDGER_SIGNING_KEY_FILE)")
    try:
        key = checkpoints.load_signing_key(path).public_key()
    except (ValueError, TypeError) as e:  # not PEM; PEM of another kind of key
        raise _fail(f"{path} holds no Ed25519 signing key: {e}") from None
    pem = checkpoints.public_key_pem(key)
    if out is None:
        typer.echo(pem, nl=False)
    else:
        out.write_text(pem)
    typer.echo(f"key id {checkpoints.key_id(key)}", err=out is None)


def register(app: typer.Typer) -> None:
    """Add the audit commands to the ``ledger`` CLI."""
    app.command("verify")(verify)
    app.command("export")(export)
    app.command("verify-bundle")(verify_bundle)
    app.command("checkpoint")(checkpoint)
    app.command("public-key")(public_key)
