-- The quiz library (docs/protocol.md, "Quiz library"). From here on a `quizzes` row is one version of a quiz and
-- never changes once written: a room names the version it was opened with (rooms.quiz_id), so editing or deleting a
-- saved quiz never changes a room, even one loaded again after a restart. A `library` row is a saved quiz as the
-- teacher sees it: a stable id naming its current version. A quiz a room got inline (POST /api/rooms with `quiz`)
-- has no library row, so it is never listed. `edit_seq` orders the list newest-edited first without ties.
CREATE TABLE library (
    quiz_id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES quizzes (quiz_id),
    title TEXT NOT NULL,
    title_key TEXT NOT NULL,
    question_count INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    edit_seq INTEGER NOT NULL
);
CREATE UNIQUE INDEX library_edit_order ON library (edit_seq);
CREATE INDEX library_documents ON library (document_id);
CREATE INDEX rooms_quiz ON rooms (quiz_id);

-- Nothing recorded how the quizzes stored so far were made, so every one of them is put in the library as its
-- version 1 (a teacher deletes those they do not want). `title_key` is lower(): SQLite's folds ASCII only, and the
-- next save of the quiz stores Python's casefold().
INSERT INTO library
    (quiz_id, document_id, title, title_key, question_count, version, created_at_ms, updated_at_ms, edit_seq)
SELECT
    quiz_id, quiz_id, title, lower(title),
    CASE WHEN json_valid(body) AND json_type(body, '$.questions') = 'array'
        THEN json_array_length(body, '$.questions') ELSE 0 END,
    1, created_at_ms, created_at_ms, row_number() OVER (ORDER BY created_at_ms, quiz_id)
FROM quizzes;
