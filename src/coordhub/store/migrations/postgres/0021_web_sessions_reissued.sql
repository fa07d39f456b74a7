-- Every dashboard web session ends once. Before this version a web session's secret (the CSRF token every
-- cookie request must carry) was answered to any request holding the cookie alone, and cookies ignore ports:
-- a server on another port of the same host could have read both. From this version the secret is given
-- out only in the sign-in answer, so a web session signed in earlier may be known to someone else: each
-- browser signs in again.
DELETE FROM web_sessions;
