"""Encrypted aggregation of model updates with CKKS: sites hold the key, the coordinator adds.

Roles and flow::

    one site (or a key ceremony)   SiteKeyring.generate()  ──► secret keyring to every site
                                   keyring.public_context() ──► coordinator
    each site                      keyring.encrypt_update(update) ──► coordinator
    coordinator                    AggregationServer(public_context).aggregate(payloads, weights)
    a site                         keyring.decrypt_sum(aggregate) ──► the (weighted) sum only

Security:
    Who holds what. Every site holds the same CKKS secret key and a 32-byte check key (the
    :class:`SiteKeyring`); the keyring travels between sites over an authenticated,
    confidential channel that is out of scope here. The coordinator holds only the public
    context (public key, no secret key, no Galois keys) and refuses a context that holds a
    secret key.

    What the coordinator learns. Ciphertexts are IND-CPA under RLWE at 128-bit security
    (see :mod:`tutela.he.ckks`), so the coordinator learns the number of values, the number
    of contributions, and each contribution's magnitude bound (sent in the clear so it can
    check the sum stays inside the CKKS range); nothing else about any update.

    What breaks it. Any site can decrypt any other site's individual contribution: a site
    colluding with the coordinator (which sees every contribution) learns every update. Use
    :mod:`tutela.he.threshold` when no single party may be able to decrypt. If a decrypted
    sum goes back to the coordinator, the coordinator holds both a ciphertext and its
    decryption, the setting of the Li–Micciancio (2021) key-recovery attack on CKKS;
    :meth:`SiteKeyring.decrypt_sum` therefore rounds released values to a grid at the error
    bound, which removes most low-order error bits but is a heuristic, not noise flooding.

    Who is inside an aggregate. A site that encrypts with ``contributor=<its name>`` adds
    four tag values keyed by the check key, the aggregation id and its name. A site that
    decrypts with ``contributors={name: weight}`` checks that the decrypted tags equal
    ``sum_i w_i t_i`` for exactly those contributors, and refuses (before decrypting) an
    aggregate naming fewer than ``min_terms``. The coordinator, without the check key,
    cannot pass off one contribution (padded with encryptions of zero, or duplicated, or
    re-weighted) as an aggregate of several: the tags would not add up.

    Integrity. CKKS is malleable, so each contribution carries keyed linear checks: every
    group of 255 values has one extra slot holding ``sum_s r_s x_s`` with secret ``r``
    derived from the check key and the aggregation id. Sums and plaintext weights preserve
    the relation, so :meth:`SiteKeyring.decrypt_sum` verifies it and raises
    :class:`~tutela.errors.IntegrityError` for a wrong key, corrupted or injected
    ciphertexts, or a mismatched aggregation id. A change ``delta`` passes only if
    ``|sum_s r_s delta_s|`` is below the check tolerance (about ``2 * error_bound``), which
    for a change confined to one value means ``|delta| < ~510 * error_bound``. The checks
    do not detect a coordinator dropping, duplicating or re-weighting whole contributions;
    the aggregate states how many contributions and which total weight it holds, and the
    check tolerance grows with the terms and magnitudes it declares, so sites compare
    ``DecryptedSum.n_terms`` and ``total_weight`` with what was agreed for the round.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal as ts

from tutela.errors import CryptoError, IntegrityError, PolicyViolation
from tutela.hazmat.prg import keystream_uint64
from tutela.hazmat.rng import SecureRandom
from tutela.he import _wire
from tutela.he.ckks import CkksParams, fingerprint, load_context, make_context
from tutela.he.ckks import public_context_bytes as _public_bytes
from tutela.he.owner import chain_bits, params_of_context

__all__ = [
    "AGGREGATION_PARAMS",
    "CONTRIBUTOR_TAGS",
    "MULTIPLICATION_PARAMS",
    "AggregationServer",
    "DecryptedSum",
    "SiteKeyring",
    "released_bound",
]

_CONTRIBUTION = 1
_AGGREGATE = 2
_GROUP = 256  # slots per check group: 255 values and one check slot
_DATA = _GROUP - 1
_KEYRING_MAGIC = b"TUHK"
_MAX_LABEL = 256
_MAX_CONTEXT_BYTES = 64 << 20
DEFAULT_MAX_VALUES = 1 << 24
_MAX_TERMS = 1 << 16
CONTRIBUTOR_TAGS = 4
"""Values a named contribution appends to the update (its keyed contributor tags)."""

FloatArray = npt.NDArray[np.float64]

AGGREGATION_PARAMS = CkksParams(8192, (60, 60), 40, max_abs=1024.0)
"""The addition-only preset (the default here): one 60-bit data prime and the special prime.
Sums need no rescale, and integer weights (example counts) are applied by exact doubling and
adding, so no level is spent; a ciphertext is half the size of :data:`MULTIPLICATION_PARAMS`'
(about 33 bytes per value instead of 59, see BENCHMARKS.md) at the same scale, range
(``|sum| < 2**19``) and error bound."""

MULTIPLICATION_PARAMS = CkksParams(8192, (60, 40, 60), 40, max_abs=1024.0)
"""One rescale level: needed only for non-integer plaintext weights (and the parameters of
keyrings made before :data:`AGGREGATION_PARAMS` became the default, still accepted)."""

_PRESETS = (AGGREGATION_PARAMS, MULTIPLICATION_PARAMS)
_MAX_INTEGER_WEIGHT = 1 << 40


def _params_for_context(ctx: Any, params: CkksParams | None) -> CkksParams:
    """``params`` if the context was made with them, else the preset it was made with."""
    have = params_of_context(ctx)
    for candidate in (params,) if params is not None else _PRESETS:
        if have == (candidate.poly_modulus_degree, chain_bits(candidate)):
            return candidate
    raise CryptoError(
        f"the public context (N={have[0]}, modulus chain {list(have[1])} bits) was not made "
        + (f"with {params}" if params is not None else "with an aggregation preset")
    )


def _times(ct: Any, weight: float, depth: int) -> Any:
    """``weight * ct``: a plaintext multiplication (one rescale) where the chain has a level,
    else exact doubling and adding of an integer weight (no level, no encoding error)."""
    if depth > 0:
        return ct * weight
    k = round(abs(weight))
    acc = None
    power = ct
    while True:
        if k & 1:
            acc = power if acc is None else acc + power
        k >>= 1
        if not k:
            break
        power = power + power
    assert acc is not None  # weights are non-zero
    return -acc if weight < 0 else acc


@dataclass(frozen=True, slots=True)
class DecryptedSum:
    """The decrypted (weighted) sum and what it is made of.

    Attributes:
        values: the sum, one float per input coordinate.
        n_terms: number of contributions the coordinator says it added.
        total_weight: ``sum |w_i|`` of the plaintext weights (``n_terms`` if unweighted).
        error_bound: per-value absolute error bound against the exact sum (CKKS error
            plus half the release grid).
    """

    values: FloatArray
    n_terms: int
    total_weight: float
    error_bound: float


def _values_per_chunk(params: CkksParams) -> int:
    return (params.slots // _GROUP) * _DATA


def _max_ciphertext_bytes(params: CkksParams) -> int:
    # two polynomials, one 64-bit word per coefficient per prime, plus headers
    return 2 * params.poly_modulus_degree * len(params.coeff_mod_bit_sizes) * 8 + 4096


def _check_coefficients(check_key: bytes, label: bytes, n_chunks: int, groups: int) -> FloatArray:
    """Secret coefficients r in [-1/255, 1/255], shape (n_chunks, groups, 255)."""
    key = hashlib.sha256(
        b"tutela.he.check/v1\x00" + check_key + struct.pack(">H", len(label)) + label
    ).digest()
    words = keystream_uint64(key, n_chunks * groups * _DATA)
    unit = (words >> np.uint64(11)).astype(np.float64) * 2.0**-53  # [0, 1)
    return ((2.0 * unit - 1.0) / _DATA).reshape(n_chunks, groups, _DATA)


def _contributor_tags(check_key: bytes, label: bytes, contributor: str) -> FloatArray:
    """The contributor's secret tags in [1, 2): only key holders can compute them."""
    name = contributor.encode("utf-8")
    if not name or len(name) > _MAX_LABEL:
        raise ValueError(f"contributor must be 1 to {_MAX_LABEL} bytes")
    key = hashlib.sha256(
        b"tutela.he.contributor/v1\x00"
        + check_key
        + struct.pack(">H", len(label))
        + label
        + struct.pack(">H", len(name))
        + name
    ).digest()
    words = keystream_uint64(key, CONTRIBUTOR_TAGS)
    return 1.0 + (words >> np.uint64(11)).astype(np.float64) * 2.0**-53


def released_bound(
    params: CkksParams, n_terms: int, weighted: bool, total_weight: float, magnitude: float
) -> tuple[float, float]:
    """(CKKS error bound per value, release grid) of an aggregate with these public fields."""
    bound = params.error_bound(
        n_terms, total_weight if weighted else 0.0, magnitude if weighted else 0.0
    )
    return bound, 2.0 ** math.floor(math.log2(bound))


def _check_label(label: bytes) -> bytes:
    if not isinstance(label, bytes):
        raise TypeError("aggregation_id must be bytes")
    if len(label) > _MAX_LABEL:
        raise ValueError(f"aggregation_id must be at most {_MAX_LABEL} bytes")
    return label


class SiteKeyring:
    """The secret key material the sites share: CKKS secret context and a check key.

    Build with :meth:`generate` (one site or a key ceremony) or :meth:`from_bytes` (the
    other sites). See the module docstring for the security model.
    """

    __slots__ = ("_check_key", "_ctx", "_fingerprint", "_public", "params")

    def __init__(self, ctx: Any, check_key: bytes, params: CkksParams) -> None:
        if not ctx.is_private():
            raise CryptoError("a site keyring needs a context with the secret key")
        if len(check_key) != 32:
            raise ValueError("check key must be 32 bytes")
        self._ctx = ctx
        self._check_key = check_key
        self.params = params
        self._public = _public_bytes(ctx, relin_keys=False)
        self._fingerprint = fingerprint(self._public)

    def __repr__(self) -> str:
        return f"SiteKeyring(<secret>, fingerprint={self._fingerprint.hex()[:16]})"

    @classmethod
    def generate(
        cls, params: CkksParams | None = None, *, rng: SecureRandom | None = None
    ) -> SiteKeyring:
        """Generate a fresh keyring.

        Args:
            params: CKKS parameters (default :data:`AGGREGATION_PARAMS`, addition only:
                integer weights; :data:`MULTIPLICATION_PARAMS` for non-integer weights).
            rng: source of the check key; SEAL draws the CKKS key from its own CSPRNG.
        """
        p = params or AGGREGATION_PARAMS
        check_key = (rng or SecureRandom()).bytes(32)
        return cls(make_context(p), check_key, p)

    def to_bytes(self) -> bytes:
        """Serialise the whole keyring, secret key included (share only among sites)."""
        p = self.params
        head = struct.pack(
            ">4sBIBB",
            _KEYRING_MAGIC,
            1,
            p.poly_modulus_degree,
            len(p.coeff_mod_bit_sizes),
            p.scale_bits,
        )
        primes = bytes(p.coeff_mod_bit_sizes)
        secret = bytes(self._ctx.serialize(save_secret_key=True, save_galois_keys=False))
        return head + primes + struct.pack(">d", p.max_abs) + self._check_key + secret

    @classmethod
    def from_bytes(cls, data: bytes) -> SiteKeyring:
        """Load a keyring serialised by :meth:`to_bytes`.

        Raises:
            IntegrityError: malformed data.
        """
        try:
            magic, version, degree, n_primes, scale_bits = struct.unpack_from(">4sBIBB", data)
            off = struct.calcsize(">4sBIBB")
            if magic != _KEYRING_MAGIC or version != 1:
                raise IntegrityError("malformed keyring")
            primes = tuple(data[off : off + n_primes])
            off += n_primes
            (max_abs,) = struct.unpack_from(">d", data, off)
            off += 8
            check_key = bytes(data[off : off + 32])
            off += 32
            params = CkksParams(degree, primes, scale_bits, max_abs)
        except (struct.error, ValueError) as exc:
            raise IntegrityError("malformed keyring") from exc
        ctx = load_context(bytes(data[off:]), max_bytes=_MAX_CONTEXT_BYTES, require_public=False)
        if not ctx.is_private():
            raise IntegrityError("malformed keyring")
        return cls(ctx, check_key, params)

    @property
    def fingerprint(self) -> bytes:
        """32-byte identifier of the key (SHA-256 over the public context)."""
        return self._fingerprint

    def public_context(self) -> bytes:
        """The public context for the coordinator: public key only, no secret key."""
        return self._public

    def encrypt_update(
        self, values: npt.ArrayLike, *, aggregation_id: bytes = b"", contributor: str | None = None
    ) -> bytes:
        """Encrypt one site's flattened update for the coordinator.

        Args:
            values: 1-D finite floats with ``|x| <= params.max_abs``.
            aggregation_id: label of this aggregation (round); all sites and the decrypting
                site must use the same one.
            contributor: the encrypting site's name; its keyed tags are appended so that a
                decrypting site can check who is inside an aggregate (see the module
                docstring). The decrypting site must then name the contributors.

        Returns:
            The contribution payload (bytes): ``ceil(len / (slots * 255/256))`` ciphertexts.
        """
        label = _check_label(aggregation_id)
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 1 or x.size == 0:
            raise ValueError("values must be a non-empty 1-D array")
        if x.size > DEFAULT_MAX_VALUES:
            raise ValueError(f"at most {DEFAULT_MAX_VALUES} values per update")
        if not np.all(np.isfinite(x)):
            raise ValueError("values must be finite")
        if contributor is not None:
            x = np.concatenate([x, _contributor_tags(self._check_key, label, contributor)])
            if x.size > DEFAULT_MAX_VALUES:
                raise ValueError(f"at most {DEFAULT_MAX_VALUES} values per update")
        amax = float(np.max(np.abs(x)))
        if amax > self.params.max_abs:
            raise ValueError(f"|value| exceeds max_abs={self.params.max_abs:g}")
        groups = self.params.slots // _GROUP
        per_chunk = _values_per_chunk(self.params)
        n_chunks = -(-x.size // per_chunk)
        flat = np.zeros(n_chunks * per_chunk)
        flat[: x.size] = x
        data = flat.reshape(n_chunks, groups, _DATA)
        r = _check_coefficients(self._check_key, label, n_chunks, groups)
        tags = np.sum(r * data, axis=-1, keepdims=True)
        rows = np.concatenate([data, tags], axis=-1).reshape(n_chunks, self.params.slots)
        blobs = [bytes(ts.ckks_vector(self._ctx, row).serialize()) for row in rows]
        return _wire.pack(
            _CONTRIBUTION, self._fingerprint, label, (x.size, 1, 0), (0.0, amax), blobs
        )

    def decrypt_sum(
        self,
        aggregate: bytes,
        *,
        aggregation_id: bytes = b"",
        contributors: Mapping[str, float] | None = None,
        min_terms: int = 1,
    ) -> DecryptedSum:
        """Decrypt an aggregate from :meth:`AggregationServer.aggregate` and verify it.

        Args:
            aggregate: the aggregate payload.
            aggregation_id: the label every contribution was encrypted under.
            contributors: ``name -> weight`` of the contributions the aggregate must hold
                exactly (each encrypted with ``contributor=name``); their tags are checked
                and removed from the values. ``None``: contributions were not named.
            min_terms: refuse, before decrypting anything, an aggregate of fewer
                contributions (a site's floor: never decrypt a single update).

        Raises:
            PolicyViolation: fewer than ``min_terms`` contributions (nothing decrypted).
            IntegrityError: wrong key, wrong aggregation id, malformed, tampered or
                injected ciphertexts (the keyed checks fail), or an aggregate that does not
                hold exactly the named contributions with their weights.
        """
        if min_terms < 1:
            raise ValueError("min_terms must be at least 1")
        if contributors is not None and len(contributors) < min_terms:
            raise PolicyViolation(
                f"refusing to decrypt an aggregate of {len(contributors)} contribution(s): "
                f"this site decrypts only aggregates of at least {min_terms}"
            )
        label = _check_label(aggregation_id)
        p = self.params
        per_chunk = _values_per_chunk(p)
        max_chunks = -(-DEFAULT_MAX_VALUES // per_chunk)
        env = _wire.unpack(
            aggregate,
            expected_kind=_AGGREGATE,
            max_bytes=max_chunks * (_max_ciphertext_bytes(p) + 4) + 8192,
            max_blobs=max_chunks,
        )
        if env.fingerprint != self._fingerprint or env.label != label:
            raise IntegrityError()
        if len(env.fields) != 3 or len(env.floats) != 2:
            raise IntegrityError("malformed payload")
        n_values, n_terms, weighted = env.fields
        total_weight, magnitude = env.floats
        n_chunks = len(env.blobs)
        if not (
            0 < n_values <= DEFAULT_MAX_VALUES
            and n_chunks == -(-n_values // per_chunk)
            and 1 <= n_terms <= _MAX_TERMS
            and weighted in (0, 1)
            and math.isfinite(total_weight)
            and math.isfinite(magnitude)
            and 0.0 <= magnitude <= p.max_result_abs
            and 0.0 <= total_weight <= p.max_result_abs
        ):
            raise IntegrityError("malformed payload")
        if n_terms < min_terms:
            raise PolicyViolation(
                f"refusing to decrypt an aggregate of {n_terms} contribution(s): "
                f"this site decrypts only aggregates of at least {min_terms}"
            )
        expected: FloatArray | None = None
        if contributors is not None:
            weights = {str(k): float(v) for k, v in contributors.items()}
            claimed = sum(abs(w) for w in weights.values())
            if (
                n_terms != len(weights)
                or n_values <= CONTRIBUTOR_TAGS
                or not all(math.isfinite(w) and w != 0 for w in weights.values())
                or (weighted and abs(total_weight - claimed) > 1e-9 * max(1.0, claimed))
                or (not weighted and any(w != 1.0 for w in weights.values()))
            ):
                raise IntegrityError("the aggregate does not hold the named contributions")
            expected = np.zeros(CONTRIBUTOR_TAGS)
            for name in sorted(weights):
                expected += weights[name] * _contributor_tags(self._check_key, label, name)
        bound, grid = released_bound(p, n_terms, bool(weighted), total_weight, magnitude)
        rows = np.empty((n_chunks, p.slots))
        for i, blob in enumerate(env.blobs):
            try:
                vec = ts.ckks_vector_from(self._ctx, blob)
                plain = np.asarray(vec.decrypt(), dtype=np.float64)
            except (ValueError, RuntimeError, TypeError) as exc:
                raise IntegrityError() from exc
            if plain.shape != (p.slots,):
                raise IntegrityError()
            rows[i] = plain
        if not np.all(np.isfinite(rows)):
            raise IntegrityError()
        groups = p.slots // _GROUP
        grid_rows = rows.reshape(n_chunks, groups, _GROUP)
        data, tags = grid_rows[..., :_DATA], grid_rows[..., _DATA]
        r = _check_coefficients(self._check_key, label, n_chunks, groups)
        tolerance = bound * (1.0 + np.sum(np.abs(r), axis=-1))
        if np.any(np.abs(tags - np.sum(r * data, axis=-1)) > tolerance):
            raise IntegrityError("aggregate failed its integrity check")
        raw = data.reshape(-1)[:n_values]
        if expected is not None:
            if np.any(np.abs(raw[-CONTRIBUTOR_TAGS:] - expected) > 2.0 * bound):
                raise IntegrityError("the aggregate does not hold the named contributions")
            raw = raw[:-CONTRIBUTOR_TAGS]
        values = np.round(raw / grid) * grid
        tw = total_weight if weighted else float(n_terms)
        return DecryptedSum(values, int(n_terms), tw, bound + grid / 2)


class AggregationServer:
    """The coordinator's side: holds only the public context and adds ciphertexts.

    Args:
        public_context: from :meth:`SiteKeyring.public_context`.
        params: the CKKS parameters the sites use (default: the preset the context was
            made with, read from the context itself).
        max_values: largest update length accepted (bounds payload sizes).

    Raises:
        CryptoError: the context holds a secret key, or was made with other parameters.
        IntegrityError: the context is malformed or too large.

    Security: see the module docstring; this object can encrypt but never decrypt.
    """

    __slots__ = ("_ctx", "_fingerprint", "_max_values", "params")

    def __init__(
        self,
        public_context: bytes,
        params: CkksParams | None = None,
        *,
        max_values: int = DEFAULT_MAX_VALUES,
    ) -> None:
        if not 1 <= max_values <= DEFAULT_MAX_VALUES:
            raise ValueError(f"max_values must be in [1, {DEFAULT_MAX_VALUES}]")
        self._max_values = max_values
        self._ctx = load_context(public_context, max_bytes=_MAX_CONTEXT_BYTES, require_public=True)
        self.params = _params_for_context(self._ctx, params)
        self._fingerprint = fingerprint(bytes(public_context))

    def is_private(self) -> bool:
        """Whether the held context has a secret key (always false)."""
        return bool(self._ctx.is_private())

    def _parse(self, payload: bytes) -> _wire.Envelope:
        per_chunk = _values_per_chunk(self.params)
        max_chunks = -(-self._max_values // per_chunk)
        env = _wire.unpack(
            payload,
            expected_kind=_CONTRIBUTION,
            max_bytes=max_chunks * (_max_ciphertext_bytes(self.params) + 4) + 8192,
            max_blobs=max_chunks,
        )
        if env.fingerprint != self._fingerprint:
            raise IntegrityError("contribution is under a different key")
        if len(env.fields) != 3 or len(env.floats) != 2 or env.fields[1:] != (1, 0):
            raise IntegrityError("malformed payload")
        n_values = env.fields[0]
        amax = env.floats[1]
        if not (
            0 < n_values <= self._max_values
            and len(env.blobs) == -(-n_values // per_chunk)
            and math.isfinite(amax)
            and 0.0 <= amax <= self.params.max_abs
        ):
            raise IntegrityError("malformed payload")
        return env

    @property
    def fingerprint(self) -> bytes:
        """32-byte identifier of the key this server adds under."""
        return self._fingerprint

    def check(self, contribution: bytes, *, aggregation_id: bytes) -> int:
        """Check one contribution's envelope (size, key, label, magnitude); return its length.

        Raises:
            IntegrityError: malformed, under another key, or for another aggregation.
        """
        env = self._parse(contribution)
        if env.label != _check_label(aggregation_id):
            raise IntegrityError("contribution is for another aggregation")
        return env.fields[0]

    def error_bound(self, aggregate: bytes) -> float:
        """Per-value error bound of the released sum of ``aggregate`` (public fields only:
        what :meth:`SiteKeyring.decrypt_sum` states)."""
        per_chunk = _values_per_chunk(self.params)
        max_chunks = -(-self._max_values // per_chunk)
        env = _wire.unpack(
            aggregate,
            expected_kind=_AGGREGATE,
            max_bytes=max_chunks * (_max_ciphertext_bytes(self.params) + 4) + 8192,
            max_blobs=max_chunks,
        )
        if len(env.fields) != 3 or len(env.floats) != 2 or env.fingerprint != self._fingerprint:
            raise IntegrityError("malformed payload")
        _, n_terms, weighted = env.fields
        total_weight, magnitude = env.floats
        bound, grid = released_bound(self.params, n_terms, bool(weighted), total_weight, magnitude)
        return bound + grid / 2

    def aggregate(
        self, contributions: Sequence[bytes], weights: Sequence[float] | None = None
    ) -> bytes:
        """Add the sites' encrypted updates, optionally weighted by plaintext scalars.

        Args:
            contributions: payloads from :meth:`SiteKeyring.encrypt_update`, all with the
                same aggregation id and length.
            weights: one finite weight per contribution, or ``None`` for a plain sum; under
                an addition-only chain (:data:`AGGREGATION_PARAMS`) integers of magnitude at
                most 2**40 (example counts).

        Returns:
            The aggregate payload (only a key holder can decrypt it).

        Raises:
            IntegrityError: a malformed contribution or one under another key.
            ValueError: mismatched ids/lengths/weights, or a sum that could leave the
                CKKS range (``sum |w_i| * max_i |x_i| > params.max_result_abs``).
        """
        if not 1 <= len(contributions) <= _MAX_TERMS:
            raise ValueError(f"need between 1 and {_MAX_TERMS} contributions")
        if weights is not None:
            w = [float(v) for v in weights]
            if len(w) != len(contributions) or not all(math.isfinite(v) and v != 0 for v in w):
                raise ValueError("need one finite, non-zero weight per contribution")
            if self.params.depth == 0 and not all(
                v == round(v) and abs(v) <= _MAX_INTEGER_WEIGHT for v in w
            ):
                raise ValueError(
                    "these addition-only CKKS parameters take integer weights (at most 2**40); "
                    "use MULTIPLICATION_PARAMS for fractional weights"
                )
        envs = [self._parse(c) for c in contributions]
        first = envs[0]
        for env in envs[1:]:
            if env.label != first.label or env.fields[0] != first.fields[0]:
                raise ValueError("contributions differ in aggregation id or length")
        amaxes = [env.floats[1] for env in envs]
        magnitude = (
            sum(amaxes)
            if weights is None
            else sum(abs(a) * m for a, m in zip(w, amaxes, strict=True))
        )
        if magnitude > self.params.max_result_abs:
            raise ValueError(
                "the (weighted) sum could leave the CKKS range; lower the weights or values"
            )
        out: list[bytes] = []
        for chunk in range(len(first.blobs)):
            acc = None
            for i, env in enumerate(envs):
                try:
                    ct = ts.ckks_vector_from(self._ctx, env.blobs[chunk])
                except (ValueError, RuntimeError, TypeError) as exc:
                    raise IntegrityError("malformed ciphertext") from exc
                if weights is not None:
                    ct = _times(ct, w[i], self.params.depth)
                acc = ct if acc is None else acc + ct
            assert acc is not None  # contributions is non-empty
            out.append(bytes(acc.serialize()))
        total_weight = 0.0 if weights is None else sum(abs(v) for v in w)
        return _wire.pack(
            _AGGREGATE,
            self._fingerprint,
            first.label,
            (first.fields[0], len(envs), 0 if weights is None else 1),
            (total_weight, magnitude),
            out,
        )
