/**
 * Constants of spa-knock, in two blocks as wireguard-go's device/constants.go does:
 * protocol constants (changing one is a wire break: bump PROTOCOL_VERSION) and tunables (config defaults).
 * @module
 */

/* ---- Protocol constants: changing these is a wire break ---- */

/** First byte of every v1 packet. */
export const PROTOCOL_VERSION = 0x01;
/** Length of the rotating key id carried in clear. */
export const KEY_ID_LEN = 8;
/** XChaCha20 extended nonce (draft-irtf-cfrg-xchacha §2). */
export const NONCE_LEN = 24;
/** HMAC-SHA256 tag, full length (RFC 2104, RFC 4868 §2.1). */
export const TAG_LEN = 32;
/** Client key length. */
export const KEY_LEN = 32;
/** Key-id epoch: the id rotates every minute so an observer cannot link knocks made in different minutes. */
export const KEY_ID_EPOCH_MS = 60_000;
/** version ‖ key id ‖ nonce */
export const HEADER_LEN = 1 + KEY_ID_LEN + NONCE_LEN;
/** Smallest payload: ts(8) type(1) duration(2) count(1) family(1). */
export const MIN_PAYLOAD_LEN = 13;
export const MIN_PACKET_LEN = HEADER_LEN + MIN_PAYLOAD_LEN + TAG_LEN;
/** Hard upper bound; far below the IPv6 minimum MTU (1280) so a knock is never fragmented. */
export const MAX_PACKET_LEN = 512;
/** Most accesses one packet may carry. */
export const MAX_ACCESSES = 32;

/** HKDF-SHA256 (RFC 5869) salt and `info` labels; one sub-key per purpose. */
export const KDF_SALT = 'spa-knock/v1';
export const KDF_LABEL_ID = 'spa-knock/v1 key-id';
export const KDF_LABEL_ENC = 'spa-knock/v1 encrypt';
export const KDF_LABEL_MAC = 'spa-knock/v1 mac';

/** Message types. */
export const MSG_OPEN = 1;
export const MSG_CLOSE = 2;

/** Address family codes in the payload's allow-address field. */
export const ADDR_NONE = 0;
export const ADDR_V4 = 4;
export const ADDR_V6 = 6;

/**
 * Payload extension (TLV) types. Types < 0x80 are skipped by a receiver that does not know them, >= 0x80 are
 * critical (docs/protocol.md §6).
 */
export const EXT_PADDING = 0x00;
/**
 * Prefix request (issue 10): value = IPv4 prefix length ‖ IPv6 prefix length, one byte each, 0 = not asked.
 * Non-critical: a server that does not know it grants the one address, i.e. less than asked, never more.
 */
export const EXT_PREFIX = 0x01;
export const EXT_PREFIX_LEN = 2;

/** Key text form: `spak1_` + base64url(key ‖ checksum), checksum = SHA-256("spak1" ‖ key)[0..4]. */
export const KEY_TEXT_PREFIX = 'spak1_';
export const KEY_CHECKSUM_LEN = 4;

/* ---- Tunables (defaults for the config file and the CLI) ---- */

export const DEFAULT_PORT = 62201;
export const DEFAULT_REPLAY_WINDOW_S = 60;
export const DEFAULT_GRANT_DURATION_S = 30;
export const DEFAULT_MAX_DURATION_S = 300;

/* ---- Internal tunables: not in the config file; named here so none hides in the code ---- */

/** Shortest grant any backend installs: a timeout below this is raised to it (nft refuses sub-second timeouts). */
export const MIN_GRANT_MS = 1000;
/** The replay log's fdatasync is batched this long after a write (the power-loss window; docs/performance.md). */
export const REPLAY_SYNC_DELAY_MS = 10;
/** Compact the replay log when it holds more than COMPACT_FACTOR × live records + COMPACT_SLACK lines. */
export const REPLAY_COMPACT_FACTOR = 2;
export const REPLAY_COMPACT_SLACK = 1000;
/** The long-lived `nft -i` child is replaced after this many requests (bounds nft's in-memory line history). */
export const NFT_RECYCLE_AFTER = 5000;
/**
 * How long past its expiry the nft backend still treats an element it wrote as possibly present (the kernel's
 * expiry trails ours by the commit time, and `nft -j` reports remaining time in whole seconds).
 */
export const NFT_KNOWN_GRACE_MS = 5000;
/** Per-command timeouts of the firewall tools, ms. */
export const NFT_TIMEOUT_MS = 5000;
/**
 * How long the nftables backend's confirming transaction waits after the kernel fast path opened every port of a
 * grant, while the grant manager has nothing else to do (server/firewall/nftables.ts, server/grant-queue.ts).
 */
export const CONFIRM_HOLD_MS = 5;
export const IPTABLES_TIMEOUT_MS = 10_000;
/** Synthetic packets verified at daemon start to warm V8's JIT up (docs/performance.md). */
export const WARMUP_ROUNDS = 2000;
/**
 * The daemon warms the verification path again after each of its first REWARM_KNOCKS accepted knocks
 * (server/daemon.ts, server/warmup.ts rewarm): what a real knock meets and the warm-up could not show V8 can still
 * make it throw optimized code away, and at knock rates it would not optimize it again. REWARM_ROUNDS rounds,
 * REWARM_STEP per turn of the event loop. Measured with test/server/warm-jit-child.ts: after a deopt, 300 rounds left
 * `verify` unoptimized, 1000 optimized it again.
 */
export const REWARM_KNOCKS = 2;
export const REWARM_ROUNDS = 1000;
export const REWARM_STEP = 100;
