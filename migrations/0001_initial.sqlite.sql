-- The first schema: quizzes, rooms, players and answers. Answers are unique on (room, question, player).
CREATE TABLE quizzes (
    quiz_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE rooms (
    room_id TEXT PRIMARY KEY,
    pin TEXT NOT NULL,
    quiz_id TEXT NOT NULL REFERENCES quizzes (quiz_id),
    host_token_hash TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT 'lobby',
    question_index INTEGER,
    opened_at_ms INTEGER NOT NULL DEFAULT 0,
    locked INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX rooms_live_pin ON rooms (pin) WHERE phase <> 'finished';
CREATE INDEX rooms_pin ON rooms (pin, created_at_ms);

CREATE TABLE players (
    room_id TEXT NOT NULL REFERENCES rooms (room_id),
    player_id TEXT NOT NULL,
    nickname TEXT NOT NULL,
    nickname_key TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    joined_at_ms INTEGER NOT NULL,
    kicked INTEGER NOT NULL DEFAULT 0,
    score INTEGER NOT NULL DEFAULT 0,
    streak INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, player_id)
);
CREATE UNIQUE INDEX players_live_nickname ON players (room_id, nickname_key) WHERE kicked = 0;

CREATE TABLE answers (
    room_id TEXT NOT NULL,
    question INTEGER NOT NULL,
    player_id TEXT NOT NULL,
    choices TEXT NOT NULL,
    correct INTEGER NOT NULL,
    points INTEGER NOT NULL,
    response_ms INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (room_id, question, player_id)
) WITHOUT ROWID;
