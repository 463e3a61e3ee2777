"""A site agent's side of CKKS rounds (:mod:`tutela.server.ckks`): encrypt, then decrypt.

Key material: every site of a CKKS study holds the same keyring (CKKS secret key and check
key) in ``ckks-keyring.key`` in its state directory, a private (0600) file written by the
one atomic writer (:func:`provision_keyring`). The loopback deployment
(:mod:`tutela.server.deploy`) plays the key ceremony and writes it to each hospital's
directory; a real deployment runs the ceremony out of band (the sites agree on one keyring
over their own authenticated channel) and the coordinator never sees it: it receives only
the public context, which each site sends with its first contribution.

Per round, with the site's :class:`~tutela.fl.ckks.CkksSite`:

- ``ckks-encrypt``: the site checks that the key the coordinator adds under is its own
  keyring's (by fingerprint), trains as for a plain round, encrypts its flattened update
  bound to the round's aggregation id (which the site derives itself from the study, round
  and attempt) and to its name, and submits it with its row count (and the public context
  when the coordinator asks for it);
- ``ckks-decrypt``: it decrypts only an aggregate that holds exactly the contributors the
  coordinator names, at least the study's quorum and its policy's ``min_secagg_threshold``
  of them and never fewer than two, once per round attempt; it submits the mean. A refusal
  is a :class:`~tutela.errors.PolicyViolation`: the agent records it and sends nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tutela.errors import IntegrityError, PolicyViolation, ProtocolAbort
from tutela.fl.ckks import CkksSite, ckks_round_id, min_contributions
from tutela.fl.records import ParameterSpec
from tutela.governance._files import atomic_write
from tutela.he.aggregation import SiteKeyring
from tutela.server.ckks import (
    DECRYPT_STAGE,
    ENCRYPT_STAGE,
    SEND_CONTEXT,
    contribution_body,
    mean_body,
    parse_contributors,
)
from tutela.server.wire import parse_tensors

if TYPE_CHECKING:
    from tutela.server.agent.site import SiteAgent

KEYRING_FILE = "ckks-keyring.key"


def provision_keyring(state_dir: Path, keyring: SiteKeyring) -> Path:
    """Write the study's keyring into a site's state directory (private file, 0600)."""
    path = state_dir / KEYRING_FILE
    atomic_write(path, keyring.to_bytes())
    return path


def load_keyring(state_dir: Path) -> SiteKeyring:
    """The keyring provisioned to this site.

    Raises:
        PolicyViolation: none is provisioned, or it cannot be read (the site cannot take
            part in a CKKS round; it sends nothing).
    """
    path = state_dir / KEYRING_FILE
    try:
        return SiteKeyring.from_bytes(path.read_bytes())
    except FileNotFoundError:
        raise PolicyViolation(
            f"no CKKS keyring is provisioned at {path}: run the key ceremony first"
        ) from None
    except IntegrityError:
        raise PolicyViolation(f"the CKKS keyring at {path} is malformed") from None


def context_wanted(site: CkksSite, request: bytes) -> bool:
    """Check a ``ckks-encrypt`` request before anything is trained; True if the coordinator
    asks for the public context.

    Raises:
        PolicyViolation: the coordinator adds under a key that is not this site's keyring.
    """
    _, meta = parse_tensors(request)
    if meta.get("kind") != ENCRYPT_STAGE:
        raise ProtocolAbort(f"expected a {ENCRYPT_STAGE} request")
    wanted = meta.get("context")
    if wanted not in (SEND_CONTEXT, site.keyring.fingerprint.hex()):
        raise PolicyViolation("the coordinator's CKKS key is not this site's keyring")
    return wanted == SEND_CONTEXT


def encrypt_reply(
    site: CkksSite,
    request: bytes,
    update: Any,
    num_examples: int,
    study_id: str,
    round_no: int,
    attempt: int,
) -> bytes:
    """Answer a ``ckks-encrypt`` request with this site's encrypted, flattened ``update``.

    Raises:
        PolicyViolation: the coordinator adds under a key that is not this site's keyring.
    """
    send_context = context_wanted(site, request)
    spec = ParameterSpec.of(update)
    payload = site.encrypt(spec.flatten(update), ckks_round_id(study_id, round_no, attempt))
    context = site.keyring.public_context() if send_context else None
    return contribution_body(study_id, round_no, num_examples, payload, context)


def decrypt_reply(
    site: CkksSite, request: bytes, study_id: str, round_no: int, attempt: int
) -> bytes:
    """Answer a ``ckks-decrypt`` request with the decrypted mean (see the module docstring).

    Raises:
        PolicyViolation: too few contributors, or this attempt was decrypted before.
        IntegrityError: the aggregate does not hold exactly the named contributions.
    """
    arrays, meta = parse_tensors(request)
    if meta.get("kind") != DECRYPT_STAGE or "aggregate" not in arrays:
        raise ProtocolAbort(f"expected a {DECRYPT_STAGE} request")
    contributors = parse_contributors(meta)
    mean = site.decrypt_mean(
        arrays["aggregate"].tobytes(), ckks_round_id(study_id, round_no, attempt), contributors
    )
    return mean_body(study_id, round_no, mean.values)


class CkksAgent:
    """The CKKS stages of one :class:`~tutela.server.agent.SiteAgent`."""

    def __init__(self, agent: SiteAgent) -> None:
        self.agent = agent
        self._sites: dict[str, CkksSite] = {}
        self._sent: dict[tuple[str, int, int, str], bytes] = {}
        """What this site answered per study, round, attempt and stage: a retry after a lost
        reply sends the same bytes (a site decrypts each attempt once)."""

    def site(self, study_id: str) -> CkksSite:
        """This site's CKKS part for a study (its keyring loaded once)."""
        if study_id not in self._sites:
            config = self.agent.studies[study_id].config
            floor = self.agent.settings.policy.min_secagg_threshold
            self._sites[study_id] = CkksSite(
                self.agent.name,
                load_keyring(self.agent.state_dir),
                min_contributions(int(config["training"]["min_quorum"]), floor),
            )
        return self._sites[study_id]

    def handle(self, task: dict[str, Any]) -> bool:
        """Answer the coordinator's request for the task's stage; True if anything was sent."""
        study_id, round_no = str(task["study_id"]), int(task["round"])
        attempt, stage = int(task.get("attempt", 1)), str(task["stage"])
        request = self.agent.transport.coordinator_message(task)
        if request is None:
            return False
        site = self.site(study_id)
        key = (study_id, round_no, attempt, stage)
        body = self._sent.get(key)
        if body is None and stage == ENCRYPT_STAGE:
            context_wanted(site, request)  # before training: nothing is spent for a wrong key
            _, update, num_examples = self.agent.rounds.train(task)
            body = encrypt_reply(site, request, update, num_examples, study_id, round_no, attempt)
        elif body is None and stage == DECRYPT_STAGE:
            try:
                body = decrypt_reply(site, request, study_id, round_no, attempt)
            except IntegrityError as exc:
                raise PolicyViolation(f"CKKS aggregate refused: {exc}") from None
        elif body is None:
            raise ProtocolAbort(f"unknown CKKS stage {stage!r}")
        self._sent = {k: v for k, v in self._sent.items() if k[:3] == key[:3]}
        self._sent[key] = body
        if stage == ENCRYPT_STAGE:  # what training spent, before the reply that may wait
            self.agent.reporter.report_round(task)
        self.agent.transport.submit(task, stage, body)
        return True
