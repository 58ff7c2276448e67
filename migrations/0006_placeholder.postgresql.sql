-- Placeholder in the images branch only: another branch's 0006 takes this number at merge (this file is dropped).
SELECT 1;
