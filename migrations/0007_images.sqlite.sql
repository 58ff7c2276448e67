-- Images of quizzes (questions and image answers), re-encoded by the upload pipeline and keyed by the SHA-256 of
-- those bytes: stored in the database like everything else, so a backup holds the quizzes' pictures too.
CREATE TABLE images (
    image_id TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    data BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
);
