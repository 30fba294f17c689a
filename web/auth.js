/*
 * Sign-in for the Resource and API Usage page: OpenID Connect authorization code flow with PKCE
 * (S256), in plain JavaScript (no library: crypto.subtle for the challenge).
 *
 * The issuer and client id come from web/config.json (the page's function: the template's JwtIssuer
 * and JwtAudience). Signed out, the page goes to the issuer's authorization endpoint and comes back
 * to itself (redirect URI: the page's own URL, `<origin>/`) with the hash route it was opened on, so
 * an email link such as #/teams/<team>/invoices/<id> lands on its view after sign-in. The ID token
 * (aud = the client id, what the HTTP API's JWT authorizer checks) is kept in sessionStorage and
 * sent as `Authorization: Bearer`; an expired token, or one the API refuses, means signing in again.
 *
 * Local runner only (config.localUserHeader, never set by the template): `?local_user=<id>` on the
 * page URL makes it send the X-Local-User header instead (for tests that are not about sign-in).
 *
 * API for the page:
 *   Auth.ready()          -> Promise of the user {sub, email, name, local}; signed out, it goes to sign in
 *   Auth.fetch(url, init) -> fetch with the identity added
 *   Auth.signOut()        -> forget the session (and end it at the issuer when it offers that)
 *   Auth.user()           -> the signed-in user or null
 */
(function () {
  "use strict";

  var PREFIX = "usage-ledger.auth.";
  var SESSION = PREFIX + "session";
  var PENDING = PREFIX + "pending";
  var LOCAL_USER = PREFIX + "local-user";
  var SIGNED_OUT = PREFIX + "signed-out";
  var EXPIRY_MARGIN_SECONDS = 30; // a token this close to exp is not sent: sign in again first
  var FRESH_SECONDS = 60; // a 401 on a token this young is a configuration error, not an expiry

  var configPromise = null;
  var discoveryPromise = null;
  var current = null;

  function AuthError(message) {
    this.message = message;
  }

  function now() {
    return Math.floor(Date.now() / 1000);
  }

  function never() {
    return new Promise(function () {});
  }

  function trimSlash(url) {
    return String(url || "").replace(/\/+$/, "");
  }

  function getJson(url, what) {
    return fetch(url, { cache: "no-store", credentials: "omit" }).then(
      function (response) {
        if (!response.ok) throw new AuthError(what + " answered HTTP " + response.status + ".");
        return response.json();
      },
      function () {
        throw new AuthError(what + " could not be reached.");
      }
    );
  }

  function config() {
    if (!configPromise) configPromise = getJson("web/config.json", "The page's configuration");
    return configPromise;
  }

  function discovery(cfg) {
    if (!discoveryPromise) {
      if (!cfg.issuer || !cfg.clientId) {
        return Promise.reject(new AuthError("The page has no sign-in issuer or client id configured."));
      }
      var issuer = trimSlash(cfg.issuer);
      discoveryPromise = getJson(issuer + "/.well-known/openid-configuration", "The sign-in provider").then(
        function (metadata) {
          if (trimSlash(metadata.issuer) !== issuer) {
            throw new AuthError("The sign-in provider names itself " + metadata.issuer + ", not " + issuer + ".");
          }
          return metadata;
        }
      );
      discoveryPromise.catch(function () { discoveryPromise = null; });
    }
    return discoveryPromise;
  }

  // ---------------------------------------------------------------- PKCE and tokens

  function base64url(bytes) {
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function randomString(byteCount) {
    var bytes = new Uint8Array(byteCount);
    crypto.getRandomValues(bytes);
    return base64url(bytes);
  }

  function s256(verifier) {
    return crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)).then(function (digest) {
      return base64url(new Uint8Array(digest));
    });
  }

  /** The claims of a JWT, unverified: the API verifies the signature, the page reads who it is for. */
  function claimsOf(token) {
    var part = String(token).split(".")[1] || "";
    part = part.replace(/-/g, "+").replace(/_/g, "/");
    while (part.length % 4) part += "=";
    var binary = atob(part);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  function redirectUri() {
    return window.location.origin + window.location.pathname;
  }

  function readJson(key) {
    try {
      return JSON.parse(sessionStorage.getItem(key) || "null");
    } catch (error) {
      return null;
    }
  }

  function storedSession() {
    var session = readJson(SESSION);
    return session && session.idToken ? session : null;
  }

  function expired(session) {
    return !session.expiresAt || session.expiresAt - EXPIRY_MARGIN_SECONDS <= now();
  }

  function userOf(session) {
    var claims = claimsOf(session.idToken);
    return { sub: claims.sub, email: claims.email || null, name: claims.name || null, local: false };
  }

  /** To the issuer's authorization endpoint; `returnHash` is the view to come back to. Never resolves.
   * Once per page: the page's parallel requests that find the token expired (or refused) all wait
   * on the one sign-in, whose state and verifier are the ones stored. */
  var signingIn = null;

  function signIn(returnHash) {
    if (!signingIn) signingIn = startSignIn(returnHash);
    return signingIn;
  }

  window.addEventListener("pageshow", function (event) {
    if (event.persisted) signingIn = null; // back from the provider through the history: may start again
  });

  function startSignIn(returnHash) {
    return config()
      .then(function (cfg) {
        return discovery(cfg).then(function (metadata) {
          var verifier = randomString(48);
          var pending = {
            state: randomString(16),
            nonce: randomString(16),
            verifier: verifier,
            hash: returnHash || "",
            redirectUri: redirectUri(),
          };
          return s256(verifier).then(function (challenge) {
            sessionStorage.setItem(PENDING, JSON.stringify(pending));
            sessionStorage.removeItem(SIGNED_OUT);
            var query = new URLSearchParams({
              response_type: "code",
              client_id: cfg.clientId,
              redirect_uri: pending.redirectUri,
              scope: cfg.scope || "openid",
              state: pending.state,
              nonce: pending.nonce,
              code_challenge: challenge,
              code_challenge_method: "S256",
            });
            window.location.assign(metadata.authorization_endpoint + "?" + query.toString());
            return never();
          });
        });
      })
      .catch(function (error) {
        signingIn = null;
        showPanel("Sign-in is not available", error.message || String(error), false);
        return never();
      });
  }

  /** Back from the issuer with ?code=&state= (or ?error=): redeem the code with the verifier. */
  function completeSignIn(cfg, params) {
    var pending = readJson(PENDING);
    sessionStorage.removeItem(PENDING);
    // the address bar loses ?code=&state= and gets back the view the user asked for
    window.history.replaceState(null, "", window.location.pathname + (pending ? pending.hash : ""));
    if (!pending || params.get("state") !== pending.state) {
      return Promise.reject(new AuthError("This sign-in answer does not belong to a sign-in started here."));
    }
    if (params.get("error")) {
      return Promise.reject(new AuthError("The sign-in provider answered: " +
        (params.get("error_description") || params.get("error")) + "."));
    }
    return discovery(cfg)
      .then(function (metadata) {
        return fetch(metadata.token_endpoint, {
          method: "POST",
          credentials: "omit",
          headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
          body: new URLSearchParams({
            grant_type: "authorization_code",
            code: params.get("code") || "",
            redirect_uri: pending.redirectUri,
            client_id: cfg.clientId,
            code_verifier: pending.verifier,
          }).toString(),
        });
      })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (!response.ok || !body.id_token) {
            throw new AuthError("The sign-in provider did not issue a token: " +
              (body.error_description || body.error || "HTTP " + response.status) + ".");
          }
          return body;
        });
      })
      .then(function (body) {
        var claims = claimsOf(body.id_token);
        var audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
        if (trimSlash(claims.iss) !== trimSlash(cfg.issuer) || audiences.indexOf(cfg.clientId) < 0) {
          throw new AuthError("The ID token is not for this page (its issuer or audience differ).");
        }
        if (claims.nonce !== pending.nonce) throw new AuthError("The ID token does not answer this sign-in (nonce).");
        var session = { idToken: body.id_token, expiresAt: claims.exp, signedInAt: now() };
        sessionStorage.setItem(SESSION, JSON.stringify(session));
        return userOf(session);
      });
  }

  // ---------------------------------------------------------------- what the page shows

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function renderStatus() {
    var host = document.getElementById("auth-status");
    if (!host) return;
    while (host.firstChild) host.removeChild(host.firstChild);
    if (!current) return;
    var label = current.email || current.name || current.sub;
    var who = element("span", "auth-status__user", "Signed in as " + label);
    who.title = "user id (sub): " + current.sub + (current.local ? " - X-Local-User header, local runner only" : "");
    host.appendChild(who);
    var button = element("button", "button button--ghost", "Sign out");
    button.type = "button";
    button.id = "sign-out";
    button.addEventListener("click", signOut);
    host.appendChild(button);
  }

  function showPanel(title, message, signedOut) {
    document.body.classList.add("auth-blocked");
    var panel = document.getElementById("auth-panel");
    if (!panel) {
      panel = element("section", "auth-panel");
      panel.id = "auth-panel";
      panel.setAttribute("role", "alert");
      document.body.insertBefore(panel, document.body.firstChild);
    }
    while (panel.firstChild) panel.removeChild(panel.firstChild);
    panel.appendChild(element("h2", null, title));
    if (message) panel.appendChild(element("p", null, message));
    var button = element("button", "button", signedOut ? "Sign in" : "Sign in again");
    button.type = "button";
    button.id = "sign-in";
    button.addEventListener("click", function () {
      button.disabled = true;
      signIn(window.location.hash);
    });
    panel.appendChild(button);
  }

  // ---------------------------------------------------------------- the API

  function ready() {
    return config()
      .then(function (cfg) {
        var params = new URLSearchParams(window.location.search);
        if (cfg.localUserHeader) {
          var asked = params.get("local_user");
          if (asked && /^[A-Za-z0-9_.@-]{1,128}$/.test(asked)) sessionStorage.setItem(LOCAL_USER, asked);
          var local = sessionStorage.getItem(LOCAL_USER);
          if (local) return { sub: local, email: null, name: null, local: true };
        }
        if (params.has("code") || params.has("error")) return completeSignIn(cfg, params);
        var session = storedSession();
        if (session && !expired(session)) return userOf(session);
        sessionStorage.removeItem(SESSION);
        if (sessionStorage.getItem(SIGNED_OUT)) {
          showPanel("You are signed out", "Sign in to see your team's balances, usage and invoices.", true);
          return never();
        }
        return signIn(window.location.hash);
      })
      .then(function (user) {
        current = user;
        document.body.classList.remove("auth-blocked");
        renderStatus();
        return user;
      })
      .catch(function (error) {
        showPanel("Sign-in did not complete", error.message || String(error), false);
        return never();
      });
  }

  function authFetch(url, init) {
    init = Object.assign({}, init || {});
    var headers = new Headers(init.headers || {});
    if (!current) return Promise.reject(new AuthError("Not signed in."));
    if (current.local) {
      headers.set("X-Local-User", current.sub);
    } else {
      var session = storedSession();
      if (!session || expired(session)) return signIn(window.location.hash);
      headers.set("Authorization", "Bearer " + session.idToken);
    }
    init.headers = headers;
    return fetch(url, init).then(function (response) {
      if (response.status === 401 && !current.local) {
        var used = storedSession();
        if (!used || now() - used.signedInAt > FRESH_SECONDS) {
          sessionStorage.removeItem(SESSION);
          return signIn(window.location.hash);
        }
      }
      return response;
    });
  }

  function signOut() {
    var session = storedSession();
    var wasLocal = current && current.local;
    sessionStorage.removeItem(SESSION);
    sessionStorage.removeItem(LOCAL_USER);
    sessionStorage.setItem(SIGNED_OUT, "1");
    current = null;
    renderStatus();
    var home = redirectUri();
    if (!session || wasLocal) {
      window.location.assign(home);
      return never();
    }
    return config()
      .then(discovery)
      .then(function (metadata) {
        if (!metadata.end_session_endpoint) {
          window.location.assign(home);
          return;
        }
        return config().then(function (cfg) {
          var query = new URLSearchParams({
            id_token_hint: session.idToken,
            client_id: cfg.clientId,
            post_logout_redirect_uri: home,
          });
          window.location.assign(metadata.end_session_endpoint + "?" + query.toString());
        });
      })
      .catch(function () {
        window.location.assign(home);
      })
      .then(never);
  }

  window.Auth = {
    ready: ready,
    fetch: authFetch,
    signOut: signOut,
    user: function () { return current; },
  };
})();
