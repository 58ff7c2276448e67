-- Placeholder in the images branch only: the integrator's 0005 takes this number at merge (this file is dropped).
SELECT 1;
