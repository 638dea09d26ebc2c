-- matchd match history. Writes are idempotent and order-insensitive: a
-- replayed journal may deliver a match's events before its `matches` row,
-- so history tables carry no foreign keys to `matches`; every natural key
-- is a primary key and every insert is ON CONFLICT DO NOTHING.

CREATE TABLE players (
    player_id   bigint PRIMARY KEY,
    first_seen  timestamptz NOT NULL DEFAULT now()
);

-- Sessions are in memory today; when they are persisted only a SHA-256 of
-- the bearer token is stored, never the token itself.
CREATE TABLE sessions (
    token_sha256 bytea PRIMARY KEY CHECK (octet_length(token_sha256) = 32),
    player_id    bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz
);
CREATE INDEX sessions_player_idx ON sessions (player_id);

CREATE TABLE matches (
    match_id    bigint PRIMARY KEY,
    ruleset     text NOT NULL,
    status      text NOT NULL CHECK (status IN ('live', 'ended')),
    node_id     text NOT NULL,
    created_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    last_seq    bigint,
    winner      smallint,
    reason      text,
    scores      bigint[]
);
-- Recently ended matches (history pages, retention jobs).
CREATE INDEX matches_ended_at_idx ON matches (ended_at DESC) WHERE status = 'ended';

CREATE TABLE match_players (
    match_id   bigint NOT NULL,
    seat       smallint NOT NULL,
    player_id  bigint NOT NULL,
    outcome    text CHECK (outcome IN ('win', 'loss', 'draw')),
    PRIMARY KEY (match_id, seat, player_id)
);
-- A player's matches.
CREATE INDEX match_players_player_idx ON match_players (player_id, match_id);

-- The primary key (match_id, seq) serves the replay query
-- `WHERE match_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`.
CREATE TABLE match_events (
    match_id  bigint NOT NULL,
    seq       bigint NOT NULL,
    seat      smallint,
    kind      text NOT NULL,
    payload   jsonb NOT NULL,
    at        timestamptz NOT NULL,
    PRIMARY KEY (match_id, seq)
);

CREATE TABLE player_stats (
    player_id   bigint PRIMARY KEY,
    wins        integer NOT NULL DEFAULT 0,
    losses      integer NOT NULL DEFAULT 0,
    draws       integer NOT NULL DEFAULT 0,
    rating      double precision NOT NULL DEFAULT 1000,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- The leaderboard: `ORDER BY rating DESC, player_id LIMIT $1`.
CREATE INDEX player_stats_rating_idx ON player_stats (rating DESC, player_id);
