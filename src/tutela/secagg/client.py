"""The SecAgg+ client state machine (messages in, messages out, no I/O).

A :class:`SecAggClient` answers each server message with exactly one client message, or
raises :class:`~tutela.errors.ProtocolAbort` (and stays aborted) when the server misbehaves
or the round cannot be completed safely.

Security (threat model): the server may deviate from the protocol (it is the transport, it
may drop, reorder, alter or invent messages) and may collude with up to t - 1 clients. Every
key advertisement a client uses (its own and its neighbours') is checked against the
long-term Ed25519 registry and the round id, so forged, altered or replayed advertisements
are rejected (the server checks all of them too, and every advertisement is some client's
neighbour). The client never reveals, for one peer, both its self-mask share and its
mask-key share (in one request or across requests): a server that asks is refused and the
client aborts. The client also refuses to unmask when fewer than ``min_survivors`` clients
are reported alive, so the distributed-DP noise in the sum never falls below its target.

Consistency check (Bonawitz et al. 2017, round 3). After the masked inputs the server tells
each survivor the survivor set and the dropped set; the client checks them against what it
holds and signs ``(round id, survivors, dropped)`` with its identity key, once per round (a
second, different set is refused). It then reveals shares only if the unmask request names
exactly the sets it signed and carries valid signatures over them from at least t distinct
neighbours of its own and, for every peer whose share it reveals, from at least t distinct
members of that peer's neighbourhood (the peer included, the client itself not). A forged,
unknown or repeated signature refuses the request. So a server that shows a target's
neighbours different survivor sets (to collect self-mask shares from some and mask-key
shares from others) needs at least ``2t - k + 1`` colluding neighbours of the target, one
more than without the check; the client also refuses any round with t <= k/2 (a floor no
server, study or site policy can lower) and t below its site's own minimum
(:class:`ClientPolicy`). Both floors are checked on the first message, before any key or
share leaves the client.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.errors import CryptoError, IntegrityError, ProtocolAbort
from tutela.hazmat.kex import (
    ed25519_public_bytes,
    ed25519_sign,
    ed25519_verify,
    generate_x25519,
    hkdf_sha256,
    open_sealed,
    seal,
    x25519_agree,
    x25519_private_bytes,
    x25519_public_bytes,
)
from tutela.hazmat.masks import add_masks, derive_mask_key, reduce_mod
from tutela.hazmat.quantize import pack, stochastic_round, to_modular
from tutela.hazmat.rng import SecureRandom
from tutela.hazmat.shamir import Share, ShareValidationError, split_field
from tutela.secagg.config import MAX_CLIENT_ID, RoundParams, Stage, majority_threshold
from tutela.secagg.graph import graph_seed, neighbours
from tutela.secagg.messages import (
    AdvertiseKeysRequest,
    ClientMessage,
    ConsistencyCheckRequest,
    ConsistencySignature,
    EncryptedShare,
    KeyAdvertisement,
    MaskedInput,
    MaskedInputRequest,
    RevealedShare,
    ServerMessage,
    ShareKeysReply,
    ShareKeysRequest,
    UnmaskReply,
    UnmaskRequest,
    consistency_bytes,
)

__all__ = [
    "AdvertisementRejected",
    "ClientPolicy",
    "RequestRefused",
    "SecAggClient",
    "pair_mask_key",
    "self_mask_commitment",
    "self_mask_key",
    "share_aad",
    "share_key",
]

SEED_BYTES = 32
_CHUNK = 16


class RequestRefused(ProtocolAbort):
    """The client refused a server request that would break its guarantees."""


class AdvertisementRejected(ProtocolAbort):
    """A key advertisement is forged, altered, replayed or from an unknown client."""


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    """A site's floor on round parameters; a round below it is refused before any key is sent.

    Whatever the policy says, a round with t <= k/2 is refused too
    (:func:`~tutela.secagg.config.majority_threshold`): that floor is not a setting.

    Attributes:
        min_threshold: smallest acceptable t; the default 2 means no single share is
            ever the secret (t > k/2 already implies it for every k >= 2).
        min_survivors: smallest acceptable ``min_survivors``.
        min_ddp_sigma: smallest acceptable guaranteed noise std on the sum (real units,
            ``sqrt(noise_variance * min_survivors) * max_weight / scale``).
    """

    min_threshold: int = 2
    min_survivors: int = 2
    min_ddp_sigma: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.min_threshold, bool) or not isinstance(self.min_threshold, int):
            raise TypeError("min_threshold must be an integer")
        if self.min_threshold < 1:
            raise ValueError(f"min_threshold must be positive, got {self.min_threshold}")
        if not (math.isfinite(self.min_ddp_sigma) and self.min_ddp_sigma >= 0):
            raise ValueError("min_ddp_sigma must be finite and non-negative")

    def check(self, params: RoundParams) -> None:
        """Raise :class:`RequestRefused` if ``params`` fall below this policy or t <= k/2."""
        majority = majority_threshold(params.neighbors)
        if params.threshold < majority:
            raise RequestRefused(
                f"threshold {params.threshold} is not above half of the round's "
                f"{params.neighbors} neighbours (at least {majority} is required)"
            )
        if params.threshold < self.min_threshold:
            raise RequestRefused(
                f"threshold {params.threshold} is below the site's {self.min_threshold}"
            )
        if params.min_survivors < self.min_survivors:
            raise RequestRefused(
                f"min_survivors {params.min_survivors} is below the site's {self.min_survivors}"
            )
        if not (
            params.noise_variance >= 0
            and params.min_survivors >= 0
            and 0 < params.scale < math.inf
            and 0 < params.max_weight < math.inf
        ):
            raise RequestRefused("round parameters refused: bad noise, survivors or scale")
        sigma = (
            math.sqrt(params.noise_variance * params.min_survivors)
            * params.max_weight
            / params.scale
        )
        if not sigma >= self.min_ddp_sigma:  # a NaN sigma is refused too
            raise RequestRefused(
                f"distributed-DP noise {sigma:.4g} on the sum is below the site's "
                f"{self.min_ddp_sigma}"
            )


def _id8(client_id: int) -> bytes:
    return client_id.to_bytes(8, "big")


def _pair(a: int, b: int) -> bytes:
    return _id8(min(a, b)) + _id8(max(a, b))


def self_mask_commitment(round_id: bytes, client_id: int, seed: bytes) -> bytes:
    """SHA-256 commitment to a self-mask seed (published in the signed advertisement)."""
    return hashlib.sha256(
        b"tutela.secagg.self-commit/v1|" + round_id + _id8(client_id) + seed
    ).digest()


def self_mask_key(round_id: bytes, client_id: int, seed: bytes) -> bytes:
    """AES key of a client's self mask."""
    return derive_mask_key(seed, context=b"self|" + round_id + _id8(client_id))


def pair_mask_key(round_id: bytes, a: int, b: int, shared_secret: bytes) -> bytes:
    """AES key of the pairwise mask between clients a and b (symmetric in a, b)."""
    return derive_mask_key(shared_secret, context=b"pair|" + round_id + _pair(a, b))


def share_key(round_id: bytes, a: int, b: int, shared_secret: bytes) -> bytes:
    """AES-256-GCM key for share transport between a and b."""
    return hkdf_sha256(shared_secret, info=b"tutela.secagg.share-key/v1|" + round_id + _pair(a, b))


def share_aad(round_id: bytes, sender: int, receiver: int) -> bytes:
    """Associated data binding a sealed share to its round, sender and receiver."""
    return b"tutela.secagg.share/v1|" + round_id + _id8(sender) + _id8(receiver)


def _chunks(secret: bytes) -> list[int]:
    return [int.from_bytes(secret[i : i + _CHUNK], "big") for i in range(0, len(secret), _CHUNK)]


@functools.lru_cache(maxsize=1 << 16)
def _verify(public: bytes, message: bytes, signature: bytes) -> None:
    """:func:`~tutela.hazmat.kex.ed25519_verify`, remembered when it succeeds (a pure function
    of the three byte strings; a failure raises :class:`IntegrityError` and is not kept).
    In an in-process simulation each signature is checked by some 2k clients; this checks
    it once."""
    ed25519_verify(public, message, signature)


_RoundView = tuple[Mapping[int, KeyAdvertisement], Mapping[int, frozenset[int]]]
_VIEWS: dict[tuple[int, int], tuple[RoundParams, tuple[KeyAdvertisement, ...], _RoundView]] = {}
_MAX_VIEWS = 4


def _round_view(params: RoundParams, ads: tuple[KeyAdvertisement, ...]) -> _RoundView:
    """The advertisements by id and the round's neighbour graph, after checking that the ids
    are sorted, distinct and invited.

    A pure function of its (immutable) arguments, memoised by identity: every client of an
    in-process simulation parses the same request, and this O(n log n) work then runs once
    per round rather than once per client. An entry keeps its arguments alive, so an id
    cannot be reused while it is cached.

    Raises:
        ProtocolAbort: unsorted or repeated ids.
        AdvertisementRejected: an advertisement from a client not invited to the round.
    """
    key = (id(params), id(ads))
    hit = _VIEWS.get(key)
    if hit is not None and hit[0] is params and hit[1] is ads:
        return hit[2]
    ids = [a.client_id for a in ads]
    if ids != sorted(set(ids)):
        raise ProtocolAbort("advertisements must be sorted by id without repeats")
    if not set(ids) <= set(params.client_ids):
        raise AdvertisementRejected("advertisement from a client not invited to the round")
    seed = graph_seed(params.round_id, (a.signed_bytes() for a in ads))
    view: _RoundView = (
        MappingProxyType({a.client_id: a for a in ads}),
        MappingProxyType(dict(neighbours(ids, params.neighbors, seed))),
    )
    if len(_VIEWS) >= _MAX_VIEWS:
        del _VIEWS[next(iter(_VIEWS))]
    _VIEWS[key] = (params, ads, view)
    return view


class SecAggClient:
    """One client's side of a SecAgg+ round.

    Args:
        client_id: this client's id (must be among the round's invited ids).
        identity: the client's long-term Ed25519 key (signs its key advertisement).
        registry: every client's long-term Ed25519 public key (raw 32 bytes), by id; the
            client verifies every advertisement against it.
        rng: randomness for keys, seeds, shares, nonces, rounding and noise (a fresh
            OS-keyed generator by default).
        policy: the site's floor on round parameters (checked on the first message).

    Usage: call :meth:`set_input` before the masked-input stage, then feed every server
    message to :meth:`handle` and send back what it returns.
    """

    def __init__(
        self,
        client_id: int,
        identity: Ed25519PrivateKey,
        registry: Mapping[int, bytes],
        *,
        rng: SecureRandom | None = None,
        policy: ClientPolicy | None = None,
    ) -> None:
        if not 0 <= client_id <= MAX_CLIENT_ID:
            raise ValueError(f"client id must be in [0, {MAX_CLIENT_ID}]")
        if registry.get(client_id) != ed25519_public_bytes(identity):
            raise ValueError("the registry does not hold this client's identity key")
        self.client_id = client_id
        self._identity = identity
        self._registry = dict(registry)
        self._rng = rng if rng is not None else SecureRandom()
        self._policy = policy if policy is not None else ClientPolicy()
        self._stage: Stage | None = None
        self._params: RoundParams | None = None
        self._update: npt.NDArray[np.floating[Any]] | None = None
        self._weight = 1.0
        self._revealed: dict[int, str] = {}
        self._peer_shares: dict[int, Share] = {}
        self._signed: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())
        self._signature: ConsistencySignature | None = None
        # X25519 secret with each neighbour's encryption key: agreed once when sealing this
        # client's shares, used again to open the neighbour's (the same pair of keys)
        self._enc_shared: dict[int, bytes] = {}

    @property
    def stage(self) -> Stage | None:
        """The last stage this client completed (``None`` before the first message)."""
        return self._stage

    def set_input(self, update: npt.ArrayLike, weight: float = 1.0) -> None:
        """The vector to contribute (1-D, finite floats) and its weight (0 <= weight <= W).

        Privacy: the update never leaves the client except clipped, quantised, noised (when
        distributed DP is on) and masked.
        """
        vec = np.asarray(update)
        if not np.issubdtype(vec.dtype, np.floating):
            vec = vec.astype(np.float64)
        if vec.ndim != 1 or not np.isfinite(vec).all():
            raise ValueError("update must be a 1-D vector of finite floats")
        w = float(weight)
        if not (np.isfinite(w) and w >= 0):
            raise ValueError("weight must be finite and non-negative")
        self._update = vec
        self._weight = w

    # -- dispatch ---------------------------------------------------------------------------

    def handle(self, message: ServerMessage) -> ClientMessage:
        """Answer one server message.

        Raises:
            ProtocolAbort: the message is out of order, for another round, forged, or asks
                for something an honest client must refuse; the client is then aborted.
        """
        if self._stage is Stage.ABORTED:
            raise ProtocolAbort("this client has aborted the round")
        try:
            if isinstance(message, AdvertiseKeysRequest):
                return self._advertise(message)
            if isinstance(message, ShareKeysRequest):
                return self._share_keys(message)
            if isinstance(message, MaskedInputRequest):
                return self._masked_input(message)
            if isinstance(message, ConsistencyCheckRequest):
                return self._consistency(message)
            if isinstance(message, UnmaskRequest):
                return self._unmask(message)
            raise ProtocolAbort(f"unexpected message {type(message).__name__}")
        except (ProtocolAbort, CryptoError, ValueError):
            self._stage = Stage.ABORTED
            raise

    def _expect(self, stage: Stage | None, round_id: bytes | None = None) -> RoundParams:
        if self._stage is not stage:
            raise ProtocolAbort("message out of order")
        params = self._params
        if params is None:
            raise ProtocolAbort("message out of order")
        if round_id is not None and round_id != params.round_id:
            raise ProtocolAbort("message for another round")
        return params

    # -- stage 1: advertise keys ------------------------------------------------------------

    def _advertise(self, message: AdvertiseKeysRequest) -> KeyAdvertisement:
        if self._stage is not None:
            raise ProtocolAbort("message out of order")
        params = message.params
        self._policy.check(params)  # the floors first, whatever else is wrong
        try:
            params.validate()
        except ValueError as exc:
            raise RequestRefused(f"round parameters refused: {exc}") from None
        if self.client_id not in params.client_ids:
            raise ProtocolAbort("this client is not invited to the round")
        self._params = params
        self._enc_key = generate_x25519(self._rng)
        self._mask_key = generate_x25519(self._rng)
        self._seed = self._rng.bytes(SEED_BYTES)
        unsigned = KeyAdvertisement(
            round_id=params.round_id,
            client_id=self.client_id,
            encryption_key=x25519_public_bytes(self._enc_key),
            mask_key=x25519_public_bytes(self._mask_key),
            self_mask_commitment=self_mask_commitment(params.round_id, self.client_id, self._seed),
            signature=bytes(64),
        )
        ad = replace(unsigned, signature=ed25519_sign(self._identity, unsigned.signed_bytes()))
        self._own_ad = ad
        self._stage = Stage.ADVERTISE_KEYS
        return ad

    # -- stage 2: share keys ----------------------------------------------------------------

    def verify_advertisement(self, ad: KeyAdvertisement) -> None:
        """Check one advertisement against the registry and this round.

        Raises:
            AdvertisementRejected: unknown or uninvited client, another round (replay), or
                a signature that does not verify (forgery or alteration).
        """
        params = self._params
        if params is None:
            raise ProtocolAbort("no round in progress")
        if ad.round_id != params.round_id:
            raise AdvertisementRejected(
                f"advertisement of client {ad.client_id} is for another round"
            )
        public = self._registry.get(ad.client_id)
        if public is None or ad.client_id not in params.client_ids:
            raise AdvertisementRejected(f"advertisement from unknown client {ad.client_id}")
        try:
            _verify(public, ad.signed_bytes(), ad.signature)
        except IntegrityError:
            raise AdvertisementRejected(
                f"advertisement of client {ad.client_id} has an invalid signature"
            ) from None

    def _share_keys(self, message: ShareKeysRequest) -> ShareKeysReply:
        params = self._expect(Stage.ADVERTISE_KEYS, message.round_id)
        ads = message.advertisements
        by_id, self._graph = _round_view(params, ads)
        if by_id.get(self.client_id) != self._own_ad:
            raise AdvertisementRejected("this client's own advertisement is missing or altered")
        if len(ads) < params.min_survivors:
            raise ProtocolAbort("fewer advertisements than min_survivors")
        mine = self._graph[self.client_id]
        if len(mine) < params.threshold:
            raise ProtocolAbort("fewer neighbours than the threshold")
        self._ads = by_id
        # Every advertisement this client uses (its neighbours') is verified here; the
        # others only feed the graph hash and are verified by their own neighbours (every
        # client has k of them), so a forged or replayed one aborts the round anyway.
        for j in sorted(mine):
            self.verify_advertisement(self._ads[j])
        self._neighbours = mine
        order = sorted(mine)
        secrets = _chunks(self._seed) + _chunks(x25519_private_bytes(self._mask_key))
        shares = split_field(secrets, params.threshold, [j + 1 for j in order], rng=self._rng)
        sealed = []
        for j, share in zip(order, shares, strict=True):
            shared = x25519_agree(self._enc_key, self._ads[j].encryption_key)
            self._enc_shared[j] = shared
            key = share_key(params.round_id, self.client_id, j, shared)
            blob = seal(
                key,
                share.to_bytes(),
                aad=share_aad(params.round_id, self.client_id, j),
                rng=self._rng,
            )
            sealed.append(EncryptedShare(self.client_id, j, blob))
        self._stage = Stage.SHARE_KEYS
        return ShareKeysReply(params.round_id, self.client_id, tuple(sealed))

    # -- stage 3: masked input --------------------------------------------------------------

    def _masked_input(self, message: MaskedInputRequest) -> MaskedInput:
        params = self._expect(Stage.SHARE_KEYS, message.round_id)
        if self._update is None:
            raise ValueError("set_input() must be called before the masked-input stage")
        if self._update.shape[0] != params.dim:
            raise ValueError(
                f"update has length {self._update.shape[0]}, round expects {params.dim}"
            )
        if self._weight > params.max_weight:
            raise ValueError(
                f"weight {self._weight} exceeds the round's max_weight {params.max_weight}"
            )
        for enc in message.shares:
            if enc.receiver != self.client_id or enc.sender not in self._neighbours:
                raise ProtocolAbort("share from a non-neighbour or for another client")
            if enc.sender in self._peer_shares:
                raise ProtocolAbort("duplicate share")
            shared = self._enc_shared.get(enc.sender)
            if shared is None:
                shared = x25519_agree(self._enc_key, self._ads[enc.sender].encryption_key)
            key = share_key(params.round_id, enc.sender, self.client_id, shared)
            try:
                plain = open_sealed(
                    key, enc.ciphertext, aad=share_aad(params.round_id, enc.sender, self.client_id)
                )
                share = Share.from_bytes(plain)
            except (IntegrityError, ShareValidationError):
                raise ProtocolAbort(f"share from client {enc.sender} does not verify") from None
            if share.x != self.client_id + 1 or len(share.values) != 4:
                raise ProtocolAbort(f"share from client {enc.sender} is malformed")
            self._peer_shares[enc.sender] = share
        live = sorted(self._peer_shares)
        if len(live) < params.threshold:
            raise ProtocolAbort("fewer live neighbours than the threshold")
        words = self._encode(params)
        plus: list[bytes] = [self_mask_key(params.round_id, self.client_id, self._seed)]
        minus: list[bytes] = []
        for j in live:
            shared = x25519_agree(self._mask_key, self._ads[j].mask_key)
            key = pair_mask_key(params.round_id, self.client_id, j, shared)
            (plus if self.client_id < j else minus).append(key)
        add_masks(words, plus, minus, params.modulus_bits)
        reduce_mod(words, params.modulus_bits)
        self._stage = Stage.MASKED_INPUT
        return MaskedInput(params.round_id, self.client_id, pack(words, params.modulus_bits))

    def _encode(self, params: RoundParams) -> npt.NDArray[np.uint32] | npt.NDArray[np.uint64]:
        """Clip, weight, quantise, add distributed-DP noise; words in Z_{2^b}."""
        assert self._update is not None
        fraction = self._weight / params.max_weight
        z = np.empty(params.vector_length, dtype=np.int64)
        z[: params.dim] = params.fixed_point.encode(self._update, rng=self._rng, factor=fraction)
        z[params.dim :] = stochastic_round(
            np.array([fraction * params.clip]), params.scale, rng=self._rng
        )
        if params.noise_variance:
            from tutela.hazmat.noise import sample_discrete_gaussian

            sigma = float(np.sqrt(params.noise_variance))
            z[: params.dim] += sample_discrete_gaussian(sigma, params.dim, rng=self._rng)
        return to_modular(z, params.modulus_bits)

    # -- stage 4: consistency check --------------------------------------------------------

    def _consistency(self, message: ConsistencyCheckRequest) -> ConsistencySignature:
        survivors, dropped = message.survivors, message.dropped
        if self._stage is Stage.CONSISTENCY_CHECK:  # an honest repeat: the same signature
            params = self._expect(Stage.CONSISTENCY_CHECK, message.round_id)
            if (survivors, dropped) != self._signed:
                raise RequestRefused(
                    "the server sent a second, different survivor set; this client signs "
                    "one survivor set per round"
                )
            assert self._signature is not None
            return self._signature
        params = self._expect(Stage.MASKED_INPUT, message.round_id)
        for ids in (survivors, dropped):
            if list(ids) != sorted(set(ids)):
                raise RequestRefused("survivor and dropped sets must be sorted without repeats")
        if set(survivors) & set(dropped):
            raise RequestRefused("a client is listed both as survivor and as dropped")
        if self.client_id not in survivors:
            raise RequestRefused(
                "this client sent its masked input but is not listed as a survivor"
            )
        if not set(survivors) | set(dropped) <= set(self._ads):
            raise RequestRefused("the survivor set names clients that never advertised")
        if not set(self._peer_shares) <= set(survivors) | set(dropped):
            raise RequestRefused(
                "the survivor set omits a neighbour that shared keys with this client"
            )
        if len(survivors) < params.min_survivors:
            raise RequestRefused(
                f"only {len(survivors)} survivors, below min_survivors={params.min_survivors}"
            )
        signed = consistency_bytes(params.round_id, survivors, dropped)
        self._signed = (survivors, dropped)
        signature = ConsistencySignature(
            params.round_id, self.client_id, ed25519_sign(self._identity, signed)
        )
        self._signature = signature
        self._stage = Stage.CONSISTENCY_CHECK
        return signature

    def _check_signatures(self, params: RoundParams, message: UnmaskRequest) -> None:
        """Refuse unless the request names the signed sets and carries enough valid signatures
        over them (see the module docstring)."""
        survivors, dropped = self._signed
        if (message.survivors, message.dropped) != (survivors, dropped):
            raise RequestRefused(
                "the unmask request's survivor or dropped set differs from the set this "
                "client signed"
            )
        signed = consistency_bytes(params.round_id, survivors, dropped)
        valid: set[int] = set()
        for sig in message.signatures:
            if sig.signer in valid:
                raise RequestRefused(f"two signatures of client {sig.signer}")
            public = self._registry.get(sig.signer)
            if public is None or sig.signer not in self._ads:
                raise RequestRefused(f"a signature of unknown client {sig.signer}")
            try:
                _verify(public, signed, sig.signature)
            except IntegrityError:
                raise RequestRefused(
                    f"the signature of client {sig.signer} does not verify over the survivor "
                    "set this client signed"
                ) from None
            valid.add(sig.signer)
        valid.discard(self.client_id)
        for who, pool in self._signature_pools():
            if len(valid & pool) < params.threshold:
                raise RequestRefused(
                    f"only {len(valid & pool)} of {who} signed the survivor set this client "
                    f"was told; t={params.threshold} are required"
                )

    def _signature_pools(self) -> list[tuple[str, frozenset[int]]]:
        """Whose signatures count, and where t of them are needed: this client's neighbours,
        and for each peer whose share it holds, that peer's neighbourhood and the peer
        (never this client itself)."""
        pools = [("this client's neighbours", self._neighbours)]
        for j in sorted(self._peer_shares):
            pool = (self._graph[j] | {j}) - {self.client_id}
            pools.append((f"client {j}'s neighbourhood", pool))
        return pools

    # -- stage 5: unmask --------------------------------------------------------------------

    def _unmask(self, message: UnmaskRequest) -> UnmaskReply:
        if self._stage is Stage.UNMASK:
            params = self._expect(Stage.UNMASK, message.round_id)
        else:
            params = self._expect(Stage.CONSISTENCY_CHECK, message.round_id)
        survivors, dropped = set(message.survivors), set(message.dropped)
        for j in self._peer_shares:  # kept apart from the signed-set check: either refuses
            kind = "self" if j in survivors else "key" if j in dropped else None
            if kind is not None and self._revealed.get(j, kind) != kind:
                raise RequestRefused(
                    f"refusing to reveal both the self-mask and the mask-key share of client {j}"
                )
        self._check_signatures(params, message)
        self_shares, key_shares = [], []
        for j, share in sorted(self._peer_shares.items()):
            if j in survivors:
                self._revealed[j] = "self"
                self_shares.append(RevealedShare(j, Share(share.x, share.values[:2]).to_bytes()))
            elif j in dropped:
                self._revealed[j] = "key"
                key_shares.append(RevealedShare(j, Share(share.x, share.values[2:]).to_bytes()))
        self._stage = Stage.UNMASK
        return UnmaskReply(params.round_id, self.client_id, tuple(self_shares), tuple(key_shares))
