/* Resource and API Usage page: plain JS, no build step, no third-party code.
 * Every piece of API data is inserted with textContent / createElement (never innerHTML); the one
 * piece of markup, the API's rendered invoice, is parsed inert by DOMParser and stripped of anything
 * active before it is shown (invoiceDocument).
 *
 * One hash URL scheme for every view, the one shared/usage_ledger/domain/links.py builds for the
 * emails (a test opens each email's link here):
 *   #/teams/<team>/balances[/<resource>]
 *   #/teams/<team>/usage?resource_id=&granularity=&group_by=&from=&to=
 *   #/teams/<team>/invoices[/<invoice>]
 *   #/teams/<team>/settings/alerts
 *   #/teams/<team>/settings/payment[/<subscription>]
 * The caller's teams and roles come from GET /v1/me; a view the roles do not allow makes no
 * request and says why it is absent.
 */
(function () {
  "use strict";

  // ------------------------------------------------------------------ state

  var state = {
    user: null, // the signed-in user's id (web/auth.js: the token's sub, or the local runner's ?local_user=)
    me: null, // GET /v1/me: { user_id, teams: [{ team_id, name, roles }] }
    team: null, // the team of the current route
    roles: [],
    route: null,
    balances: null, // the team's cards (names, units, resources), loaded once per team and generation
    balancesFor: null,
    generation: 0, // bumped on every navigation; stale responses are dropped
  };

  var TYPE_LABELS = { free: "Free tier", token_flex: "Token Flex (EBA)", flex: "Flex", payg: "Pay as You Go" };
  var STATUS_LABELS = { ok: "OK", low: "Low", exhausted: "Exhausted" };
  var ROLE_LABELS = {
    primary_admin: "primary admin", secondary_admin: "secondary admin", sso_admin: "SSO admin", hub_admin: "hub admin",
  };
  var PALETTE = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626", "#475569", "#c2410c"];
  var MAX_MONTHS = 24;
  var SERIES_PER_PAGE = 8;

  // ------------------------------------------------------------------ DOM helpers

  function $(id) {
    return document.getElementById(id);
  }

  /** el("p", {class: "x"}, "text", child) - attributes via setAttribute, children as text nodes or nodes. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    appendChildren(node, Array.prototype.slice.call(arguments, 2));
    return node;
  }

  var SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    appendChildren(node, Array.prototype.slice.call(arguments, 2));
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = String(value);
      else if (key.slice(0, 2) === "on" && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    });
  }

  function appendChildren(node, children) {
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      if (Array.isArray(child)) appendChildren(node, child);
      else if (typeof child === "string" || typeof child === "number") node.appendChild(document.createTextNode(String(child)));
      else node.appendChild(child);
    });
  }

  function replace(container) {
    while (container.firstChild) container.removeChild(container.firstChild);
    appendChildren(container, Array.prototype.slice.call(arguments, 1));
    container.setAttribute("aria-busy", "false");
  }

  function loading(container, text) {
    container.setAttribute("aria-busy", "true");
    while (container.firstChild) container.removeChild(container.firstChild);
    container.appendChild(el("p", { class: "loading" }, text));
  }

  function section(id, title, meta) {
    return el("section", { class: "section", id: id + "-section", "aria-labelledby": id + "-title" },
      el("div", { class: "section__head" }, el("h2", { id: id + "-title" }, title),
        el("p", { class: "section__meta", id: id + "-meta", "aria-live": "polite" }, meta || "")));
  }

  // ------------------------------------------------------------------ formatting

  var numberFormat = new Intl.NumberFormat("en-US");
  function num(value) {
    return value === null || value === undefined ? "–" : numberFormat.format(value);
  }

  function plural(count, unit) {
    if (!unit) return num(count);
    if (count === 1) return num(count) + " " + unit;
    var last = unit.slice(-1);
    var suffix = last === "s" ? "" : last === "y" && !/[aeiou]y$/.test(unit) ? "ies" : "s";
    var stem = suffix === "ies" ? unit.slice(0, -1) : unit;
    return num(count) + " " + stem + suffix;
  }

  function days(count) {
    return count === 1 ? "1 day" : num(count) + " days";
  }

  /** Amount in minor units (3750, "usd") -> "$37.50", using the currency's own fraction digits. */
  function money(minor, currency) {
    if (minor === null || minor === undefined) return "–";
    var code = String(currency || "usd").toUpperCase();
    var format;
    try {
      format = new Intl.NumberFormat("en-US", { style: "currency", currency: code });
    } catch (error) {
      return num(minor) + " " + code + " (minor units)";
    }
    var digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(minor / Math.pow(10, digits));
  }

  var dateFormat = new Intl.DateTimeFormat("en-US", { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" });
  var monthFormat = new Intl.DateTimeFormat("en-US", { year: "numeric", month: "short", timeZone: "UTC" });
  var dateTimeFormat = new Intl.DateTimeFormat("en-US", {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC", timeZoneName: "short",
  });

  /** "2026-12-10" or "2026-12-10T00:00:00Z" -> "Dec 10, 2026" (dates are shown as given, never shifted). */
  function date(value) {
    if (!value) return "–";
    var parsed = parseDate(String(value).slice(0, 10));
    return parsed ? dateFormat.format(parsed) : String(value);
  }

  function dateTime(value) {
    if (!value) return "–";
    var parsed = new Date(value);
    return isNaN(parsed.getTime()) ? String(value) : dateTimeFormat.format(parsed);
  }

  var zonedFormats = {};
  /** An instant in a named IANA zone (a payg subscription's: its invoices are in the purchaser's zone),
   * "Dec 9, 2026, 04:00 AM PST"; the page says which zone beside it (zoneNote). UTC when none is known. */
  function dateTimeIn(value, zone) {
    if (!value) return "–";
    var parsed = new Date(value);
    if (isNaN(parsed.getTime())) return String(value);
    return zonedFormat(zone, true).format(parsed);
  }

  /** The local date of an instant in a zone: "Dec 9, 2026". */
  function dateIn(value, zone) {
    if (!value) return "–";
    var parsed = new Date(value);
    if (isNaN(parsed.getTime())) return String(value);
    return zonedFormat(zone, false).format(parsed);
  }

  function zonedFormat(zone, withTime) {
    var key = (zone || "UTC") + (withTime ? "|t" : "|d");
    if (!zonedFormats[key]) {
      var options = { year: "numeric", month: "short", day: "numeric", timeZone: zone || "UTC" };
      if (withTime) { options.hour = "2-digit"; options.minute = "2-digit"; options.timeZoneName = "short"; }
      try {
        zonedFormats[key] = new Intl.DateTimeFormat("en-US", options);
      } catch (error) { // a zone this browser does not know: UTC, and zoneNote still names the zone
        options.timeZone = "UTC";
        zonedFormats[key] = new Intl.DateTimeFormat("en-US", options);
      }
    }
    return zonedFormats[key];
  }

  function zoneNote(zone) {
    return "Dates and times in " + (zone || "UTC") + (zone && zone !== "UTC" ? ", the purchaser's time zone" : "");
  }

  function parseDate(text) {
    var match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
    if (!match) return null;
    return new Date(Date.UTC(+match[1], +match[2] - 1, +match[3]));
  }

  function isoDate(d) {
    return d.toISOString().slice(0, 10);
  }

  function todayUtc() {
    var now = new Date();
    return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  }

  function addDays(d, n) {
    return new Date(d.getTime() + n * 86400000);
  }

  function addMonths(d, n) {
    var year = d.getUTCFullYear();
    var month = d.getUTCMonth() + n;
    var target = new Date(Date.UTC(year, month, 1));
    var last = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate();
    return new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth(), Math.min(d.getUTCDate(), last)));
  }

  function cards() {
    return state.balances || [];
  }

  function cardOf(resourceId) {
    for (var i = 0; i < cards().length; i++) if (cards()[i].resource_id === resourceId) return cards()[i];
    return null;
  }

  function resourceName(resourceId) {
    var card = cardOf(resourceId);
    return card ? card.display_name || resourceId : resourceId;
  }

  // ------------------------------------------------------------------ routes (domain/links.py's scheme)

  var VIEWS = ["balances", "usage", "invoices", "alerts", "payment"];

  /** "#/teams/t/usage?x=1" -> { team, view, item, query }; view "home" for "#/" or "", "unknown" otherwise. */
  function parseHash(hash) {
    var text = String(hash || "").replace(/^#/, "");
    var q = text.indexOf("?");
    var query = {};
    if (q >= 0) {
      new URLSearchParams(text.slice(q + 1)).forEach(function (value, key) { query[key] = value; });
      text = text.slice(0, q);
    }
    if (/^team=/.test(text)) { // the page's links before this scheme: #team=<team>&user=<user>
      return { view: "home", team: new URLSearchParams(text).get("team") || null, item: null, query: query };
    }
    var parts = text.split("/").filter(Boolean).map(function (part) {
      try { return decodeURIComponent(part); } catch (error) { return part; }
    });
    if (!parts.length) return { view: "home", team: null, item: null, query: query };
    if (parts[0] !== "teams" || !parts[1]) return { view: "unknown", team: null, item: null, query: query };
    var route = { team: parts[1], view: "unknown", item: null, query: query };
    var rest = parts.slice(2);
    if (!rest.length) route.view = "home";
    else if (rest[0] === "balances" && rest.length <= 2) { route.view = "balances"; route.item = rest[1] || null; }
    else if (rest[0] === "usage" && rest.length === 1) route.view = "usage";
    else if (rest[0] === "invoices" && rest.length <= 2) { route.view = "invoices"; route.item = rest[1] || null; }
    else if (rest[0] === "settings" && rest[1] === "alerts" && rest.length === 2) route.view = "alerts";
    else if (rest[0] === "settings" && rest[1] === "payment" && rest.length <= 3) { route.view = "payment"; route.item = rest[2] || null; }
    return route;
  }

  /** The page's link to a view: exactly what links.py's page_link builds. */
  function link(team, view, item, query) {
    var parts = view === "alerts" ? ["settings", "alerts"] : view === "payment" ? ["settings", "payment"] : [view];
    if (item) parts.push(item);
    var hash = "#/teams/" + [team].concat(parts).map(encodeURIComponent).join("/");
    var params = new URLSearchParams();
    Object.keys(query || {}).forEach(function (key) {
      if (query[key] !== null && query[key] !== undefined && query[key] !== "") params.set(key, query[key]);
    });
    var text = params.toString();
    return text ? hash + "?" + text : hash;
  }

  function go(hash, replaceEntry) {
    if (window.location.hash === hash) return render();
    if (replaceEntry) {
      history.replaceState(null, "", hash);
      render();
    } else {
      window.location.hash = hash; // hashchange renders (and back/forward come back here)
    }
  }

  // ------------------------------------------------------------------ roles (contract section 2)

  function has(role) {
    return state.roles.indexOf(role) >= 0;
  }

  function capabilities() {
    var admin = has("primary_admin") || has("secondary_admin") || has("sso_admin");
    var hub = has("hub_admin");
    return {
      admin: admin,
      hub: hub,
      balances: admin || hub,
      usage: admin || hub,
      notices: admin || hub,
      invoices: admin,
      alerts: admin,
      manageAlerts: has("primary_admin") || has("secondary_admin"),
      members: admin,
      payment: admin,
    };
  }

  function rolesText(roles) {
    if (!roles.length) return "no role";
    return roles.map(function (role) { return ROLE_LABELS[role] || role; }).join(", ");
  }

  /** Why a view is absent for the caller's roles (null when it is not). */
  function whyNot(view) {
    var can = capabilities();
    var who = "Your role in this team (" + rolesText(state.roles) + ")";
    if (!can.balances) {
      return who + " does not give access to this page. Balances, usage, invoices and alerts are shown to the team's " +
        "admins (primary, secondary or SSO admin); API balances and notices also to hub admins. Ask a primary admin of the team for a role.";
    }
    if ((view === "invoices" || view === "payment") && !can.invoices) {
      return who + " shows API resources and their notices only. Invoices and payment details are for the team's admins.";
    }
    if (view === "alerts" && !can.alerts) {
      return who + " shows API resources and their notices only. Run-out alerts are read by the team's admins and managed by primary and secondary admins.";
    }
    return null;
  }

  // ------------------------------------------------------------------ API

  function ApiError(status, problem) {
    this.status = status;
    this.problem = problem || {};
  }

  function teamPath(suffix) {
    return "/v1/teams/" + encodeURIComponent(state.team) + suffix;
  }

  /** The page's one fetch: the signed-in identity (web/auth.js's Auth.fetch adds it: the Bearer
   * token, or X-Local-User where the local runner's config allows ?local_user=), JSON or another
   * Accept; resolves with the parsed body (or {body, headers} with options.withHeaders), rejects
   * with ApiError (problem+json read). */
  function api(path, options) {
    options = options || {};
    var headers = { Accept: options.accept || "application/json" };
    var init = { method: options.method || "GET", headers: headers, cache: "no-store" };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    return Auth.fetch(path, init).then(
      function (response) {
        if (response.status === 204) return null;
        var type = response.headers.get("Content-Type") || "";
        var read = /json/.test(type) ? response.json().catch(function () { return null; }) : response.text();
        return read.then(function (body) {
          if (!response.ok) throw new ApiError(response.status, problemOf(response.status, body));
          return options.withHeaders ? { body: body, headers: response.headers } : body;
        });
      },
      function () {
        throw new ApiError(0, { title: "The API could not be reached", detail: "Check your connection (locally: that `make run` is running), then reload." });
      }
    );
  }

  function problemOf(status, body) {
    if (body && typeof body === "object") {
      if (body.title || body.detail) return body;
      if (body.message) return { title: body.message, status: status };
    }
    var text = typeof body === "string" && body.length < 300 ? body.trim() : "";
    return { title: "Request failed (HTTP " + status + ")", detail: text || null, status: status };
  }

  var FRIENDLY = {
    401: "You are not signed in.",
    403: "Your role does not allow this.",
    404: "Not found: you may not be a member of this team, or it does not exist.",
  };

  /** A readable error block for a failed request (problem+json: title, detail, errors[]). */
  function errorBox(error, what, ownTitle) {
    if (!(error instanceof ApiError)) {
      if (window.console) console.error(error);
      error = new ApiError(0, { title: "Something went wrong", detail: String((error && error.message) || error) });
    }
    var problem = error.problem;
    var title = ownTitle && what ? what : (what ? what + ": " : "") + (problem.title || "Request failed");
    var box = el("div", { class: "error", role: "alert" },
      el("p", { class: "error__title" }, title),
      problem.detail ? el("p", { class: "error__detail" }, String(problem.detail)) : null,
      !problem.detail && FRIENDLY[error.status] ? el("p", { class: "error__detail" }, FRIENDLY[error.status]) : null
    );
    if (Array.isArray(problem.errors) && problem.errors.length) {
      box.appendChild(el("ul", { class: "error__list" }, problem.errors.map(function (item) {
        var path = item && item.path !== undefined && item.path !== null ? String(item.path) : "";
        return el("li", null, path ? el("code", null, path) : null, path ? ": " : "", String((item && item.message) || item));
      })));
    }
    // the status code only where no explanation came with it (it means nothing to a customer)
    if (error.status && !problem.detail) box.appendChild(el("p", { class: "error__status" }, "HTTP " + error.status));
    return box;
  }

  function explain(title, text, extra) {
    return el("div", { class: "explain", role: "note" }, el("h2", null, title), el("p", null, text), extra || null);
  }

  // ------------------------------------------------------------------ chrome: team picker, tabs, banner

  var TAB_LABELS = { balances: "Balances", usage: "Usage", invoices: "Invoices", alerts: "Settings · Alerts", payment: "Settings · Payment method" };

  function drawChrome() {
    var select = $("team-select");
    while (select.firstChild) select.removeChild(select.firstChild);
    var teams = (state.me && state.me.teams) || [];
    teams.forEach(function (team) {
      select.appendChild(el("option", { value: team.team_id }, (team.name || team.team_id) + " (" + rolesText(team.roles) + ")"));
    });
    if (state.team && !teams.some(function (team) { return team.team_id === state.team; })) {
      select.appendChild(el("option", { value: state.team }, state.team + " (not a member)"));
    }
    select.value = state.team || "";
    select.disabled = teams.length < 1;
    $("who").textContent = state.me && state.team ? "Your role in this team: " + rolesText(state.roles) : "";

    var tabs = $("tabs");
    replace(tabs);
    if (!state.team) return;
    VIEWS.forEach(function (view) {
      var reason = whyNot(view);
      var current = state.route && state.route.view === view;
      if (reason) {
        tabs.appendChild(el("span", { class: "tab tab--off", title: reason, "aria-disabled": "true", "data-view": view }, TAB_LABELS[view]));
      } else {
        tabs.appendChild(el("a", { class: "tab", href: link(state.team, view), "aria-current": current ? "page" : null, "data-view": view }, TAB_LABELS[view]));
      }
    });
    var note = $("role-note");
    var can = capabilities();
    if (can.balances && !can.admin) {
      note.textContent = "You are a hub admin of this team: you see its API resources and their notices. Other resources, invoices, alerts and payment details are for the team's admins.";
      note.hidden = false;
    } else if (can.alerts && !can.manageAlerts) {
      note.textContent = "You can read this team's alerts; creating or deleting them is for primary and secondary admins.";
      note.hidden = false;
    } else {
      note.hidden = true;
    }
  }

  function loadBanner(generation) {
    var banner = $("banner");
    if (!capabilities().notices) {
      banner.hidden = true;
      return Promise.resolve();
    }
    // the cards first (cached per team): the banner names its resources by their display names
    return loadCards(generation).catch(function () { return []; }).then(function () {
      return api(teamPath("/notices"));
    }).then(
      function (body) {
        if (generation !== state.generation) return;
        var notice = body && body.banner;
        if (!notice) {
          banner.hidden = true;
          replace(banner);
          return;
        }
        var level = notice.level === "error" ? "error" : "warning";
        banner.className = "banner banner--" + level;
        var names = (notice.resource_ids || []).map(resourceName);
        replace(banner,
          el("div", { class: "banner__inner" },
            el("span", { class: "banner__icon", "aria-hidden": "true" }, level === "error" ? "!" : "⚠"),
            el("div", null,
              el("p", { class: "banner__message" }, el("strong", null, notice.message)),
              names.length ? el("p", { class: "banner__resources" }, "Affected " + (names.length === 1 ? "resource" : "resources") + ": ",
                names.map(function (name, i) {
                  return [i ? ", " : "", el("a", { href: link(state.team, "balances", notice.resource_ids[i]) }, name)];
                })) : null,
              bannerActions(notice)
            )
          )
        );
        banner.hidden = false;
      },
      function () {
        if (generation === state.generation) banner.hidden = true;
      }
    );
  }

  /** Past due in the banner: a link to update each card, for whoever may update it. */
  function bannerActions(notice) {
    if (!capabilities().payment) return null;
    var due = cards().filter(function (card) {
      return isPastDue(card) && mayPayFor(paygRow(card)) && (notice.resource_ids || []).indexOf(card.resource_id) >= 0;
    });
    if (!due.length) return null;
    return el("p", { class: "banner__actions" }, due.map(function (card, i) {
      var row = paygRow(card);
      return [i ? " · " : "", el("a", { class: "banner__action", href: link(state.team, "payment", row ? row.subscription_id : null) },
        "Update the card for " + (card.display_name || card.resource_id))];
    }));
  }

  /** After a payment: the banner (and the cards it names) read again, so that a paid past due goes. */
  function refreshNotices(generation) {
    if (generation !== state.generation) return;
    state.balancesFor = null;
    loadBanner(generation);
  }

  function loadCards(generation) {
    if (state.balancesFor === state.team && state.balances) return Promise.resolve(state.balances);
    return api(teamPath("/balances")).then(function (body) {
      if (generation === state.generation) {
        state.balances = (body && body.balances) || [];
        state.balancesFor = state.team;
        state.balancesAsOf = body && body.as_of;
      }
      return (body && body.balances) || [];
    });
  }

  // ------------------------------------------------------------------ balances view

  function viewBalances(view, generation, route) {
    var box = section("balances", "Balances");
    var container = el("div", { id: "balances", class: "cards", "aria-busy": "true" }, el("p", { class: "loading" }, "Loading balances…"));
    box.appendChild(container);
    replace(view, box);
    state.balancesFor = null; // balances always fresh on their own view
    return loadCards(generation).then(function (list) {
      if (generation !== state.generation) return;
      $("balances-meta").textContent = state.balancesAsOf ? "As of " + dateTime(state.balancesAsOf) : "";
      if (!list.length) {
        replace(container, el("p", { class: "empty" }, capabilities().admin ? "This team has no subscriptions yet." : "This team has no API resources."));
        return;
      }
      var shown = list;
      if (route.item) {
        shown = list.filter(function (card) { return card.resource_id === route.item; });
        if (!shown.length) {
          replace(container, explain("Not shown", "Resource “" + route.item + "” has no balance card you can see in this team."));
          return;
        }
      }
      replace(container, shown.map(balanceCard));
      if (route.item) {
        container.firstChild.classList.add("card--focus");
        box.appendChild(el("p", { class: "crumbs" }, el("a", { href: link(state.team, "balances") }, "Show every balance"), " · ",
          el("a", { href: link(state.team, "usage", null, { resource_id: route.item }) }, "Usage of " + resourceName(route.item))));
      }
    }, function (error) {
      if (generation === state.generation) replace(container, errorBox(error, "Balances could not be loaded"));
    });
  }

  // ------------------------------------------------------------------ usage view

  function usageQuery(route) {
    var today = todayUtc();
    var q = route.query;
    var visible = cards();
    var resource = q.resource_id && cardOf(q.resource_id) ? q.resource_id : visible.length ? visible[0].resource_id : null;
    return {
      resource_id: resource,
      granularity: q.granularity === "month" ? "month" : "day",
      group_by: q.group_by === "user" || q.group_by === "app" ? q.group_by : "resource",
      from: /^\d{4}-\d{2}-\d{2}$/.test(q.from || "") ? q.from : isoDate(addDays(today, -29)),
      to: /^\d{4}-\d{2}-\d{2}$/.test(q.to || "") ? q.to : isoDate(today),
      limit: /^\d{1,3}$/.test(q.limit || "") ? q.limit : null,
    };
  }

  function viewUsage(view, generation, route) {
    var box = section("usage", "Usage");
    replace(view, box);
    var body = el("div", { id: "usage", class: "usage-block", "aria-busy": "true" }, el("p", { class: "loading" }, "Loading usage…"));
    box.appendChild(body); // loading until the controls and the first page are drawn
    return loadCards(generation).then(function () {
      if (generation !== state.generation) return;
      var asked = usageQuery(route);
      if (!asked.resource_id) {
        replace(body, el("p", { class: "empty" }, "No resources to show usage for."));
        return;
      }
      box.insertBefore(usageControls(asked), body);
      box.insertBefore(el("p", { class: "note" }, "Usage is actual usage in " + unitWord(asked.resource_id, 2) +
        " (base units, not charged units), by UTC day or month, refreshed on a delay of up to 30 minutes. One resource at a time: resources are counted in different units."), body);
      return loadUsagePage(body, asked, generation, []);
    }, function (error) {
      if (generation === state.generation) replace(body, errorBox(error, "Resources could not be loaded"));
    });
  }

  function unitWord(resourceId, count) {
    var card = cardOf(resourceId);
    var unit = (card && card.unit) || "base unit";
    return plural(count, unit).replace(/^[\d,]+ /, "");
  }

  function usageControls(asked) {
    function field(id, label, control) {
      return el("div", { class: "field" }, el("label", { for: id }, label), control);
    }
    function options(pairs, value) {
      return pairs.map(function (pair) { return el("option", { value: pair[0], selected: pair[0] === value }, pair[1]); });
    }
    var form = el("form", { id: "usage-form", class: "controls", autocomplete: "off" },
      field("usage-resource", "Resource", el("select", { id: "usage-resource" }, options(cards().map(function (card) {
        return [card.resource_id, (card.display_name || card.resource_id) + " (" + unitWord(card.resource_id, 2) + ")"];
      }), asked.resource_id))),
      field("usage-group", "Show", el("select", { id: "usage-group" }, options([["resource", "Total"], ["user", "By user"], ["app", "By app"]], asked.group_by))),
      field("usage-granularity", "Granularity", el("select", { id: "usage-granularity" }, options([["day", "Day"], ["month", "Month"]], asked.granularity))),
      field("usage-from", "From (UTC)", el("input", { id: "usage-from", type: "date", value: asked.from, required: true })),
      field("usage-to", "To (UTC)", el("input", { id: "usage-to", type: "date", value: asked.to, required: true })),
      el("button", { type: "submit", class: "button" }, "Show usage"),
      el("button", { type: "button", class: "button button--ghost", id: "usage-csv" }, "Download CSV")
    );
    var today = todayUtc();
    form.querySelector("#usage-to").max = isoDate(today);
    form.querySelector("#usage-from").min = isoDate(addMonths(today, -MAX_MONTHS));
    function current() {
      return {
        resource_id: form.querySelector("#usage-resource").value,
        group_by: form.querySelector("#usage-group").value,
        granularity: form.querySelector("#usage-granularity").value,
        from: form.querySelector("#usage-from").value,
        to: form.querySelector("#usage-to").value,
        limit: asked.limit,
      };
    }
    function apply() {
      go(link(state.team, "usage", null, current()));
    }
    ["usage-resource", "usage-group", "usage-granularity"].forEach(function (id) {
      form.querySelector("#" + id).addEventListener("change", apply);
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); apply(); });
    form.querySelector("#usage-csv").addEventListener("click", function (event) { downloadCsv(event.target, current()); });
    return form;
  }

  function reportQuery(asked, cursor, limit) {
    var params = new URLSearchParams();
    params.set("from", asked.from);
    params.set("to", asked.to);
    params.set("granularity", asked.granularity);
    params.set("group_by", asked.group_by);
    params.set("resource_id", asked.resource_id);
    params.set("limit", String(limit || asked.limit || SERIES_PER_PAGE));
    if (cursor) params.set("cursor", cursor);
    return "?" + params.toString();
  }

  /** One page of series (the report's next_cursor pages them); `cursors` are the pages before. */
  function loadUsagePage(container, asked, generation, cursors) {
    loading(container, "Loading usage…");
    var cursor = cursors.length ? cursors[cursors.length - 1] : null;
    return api(teamPath("/usage" + reportQuery(asked, cursor))).then(function (body) {
      if (generation !== state.generation) return;
      $("usage-meta").textContent = body && body.as_of ? "As of " + dateTime(body.as_of) : "";
      renderUsage(container, body || {}, asked);
      var page = cursors.length + 1;
      if (body.next_cursor || cursors.length) {
        container.appendChild(el("div", { class: "pager" },
          el("span", { class: "pager__page" }, "Page " + page + " of the " + (asked.group_by === "user" ? "users" : "apps")),
          cursors.length ? el("button", { type: "button", class: "button button--ghost button--small", id: "usage-prev",
            onclick: function () { loadUsagePage(container, asked, generation, cursors.slice(0, -1)); } }, "Previous page") : null,
          body.next_cursor ? el("button", { type: "button", class: "button button--ghost button--small", id: "usage-next",
            onclick: function () { loadUsagePage(container, asked, generation, cursors.concat([body.next_cursor])); } }, "Next page") : null
        ));
      }
    }, function (error) {
      if (generation === state.generation) replace(container, errorBox(error, "Usage could not be loaded"));
    });
  }

  /** Every page of the report as one CSV (the API pages CSV too: X-Next-Cursor), saved as a file. */
  function downloadCsv(button, asked) {
    button.disabled = true;
    var parts = [];
    function page(cursor, left) {
      return api(teamPath("/usage" + reportQuery(asked, cursor, 100)), { accept: "text/csv", withHeaders: true }).then(function (answer) {
        // the API's rows as it wrote them (a formula-like key already starts with '; a quoted key
        // may hold a line break): only the repeated header row goes, and it holds no quote
        var body = String(answer.body || ""), header = body.indexOf("\r\n") + 2;
        if (!parts.length) parts.push(body.slice(0, header));
        parts.push(body.slice(header));
        var next = answer.headers.get("X-Next-Cursor");
        return next && left > 1 ? page(next, left - 1) : null;
      });
    }
    page(null, 50).then(function () {
      var blob = new Blob([parts.join("")], { type: "text/csv" });
      var anchor = el("a", { href: URL.createObjectURL(blob), download: "usage-" + state.team + "-" + asked.resource_id + "-" + asked.from + "-" + asked.to + ".csv", id: "usage-csv-file" });
      document.body.appendChild(anchor);
      anchor.click();
      setTimeout(function () { URL.revokeObjectURL(anchor.href); anchor.remove(); }, 30000);
      button.disabled = false;
    }, function (error) {
      button.disabled = false;
      $("usage").appendChild(errorBox(error, "The CSV could not be downloaded"));
    });
  }

  function seriesLabel(key, group) {
    key = key || {};
    if (group === "resource") return "Total";
    var value = group === "user" ? key.user_id : key.app_id;
    if (value === null || value === undefined || value === "") return group === "app" ? "(no app)" : "(no user)";
    return String(value);
  }

  function balanceCard(card) {
    var status = STATUS_LABELS[card.status] ? card.status : "ok";
    var unit = card.unit || "unit";
    var size = card.charge_unit_size || 1;
    var total = card.total || 0;
    var available = card.available || 0;
    var percent = total > 0 ? Math.max(0, Math.min(100, (available / total) * 100)) : 0;
    var chargedUnit = size > 1 ? "charged unit" : unit;
    var headingId = "card-" + String(card.resource_id).replace(/[^A-Za-z0-9_-]/g, "_");

    var facts = el("dl", { class: "facts" });
    function fact(label, value, extraClass) {
      facts.appendChild(el("div", { class: "fact" + (extraClass ? " " + extraClass : "") }, el("dt", null, label), el("dd", null, value)));
    }
    fact("Total capacity purchased", plural(card.total_purchased || 0, chargedUnit) + (size > 1 ? " (1 unit = " + plural(size, unit) + ")" : ""));
    // "N of M" counts this period's prepaid units (free tier included); "purchased" counts purchased ones only
    var free = (card.subscriptions || []).reduce(function (sum, sub) { return sum + (sub.type === "free" ? sub.total || 0 : 0); }, 0);
    if (total !== (card.total_purchased || 0)) {
      fact("“of " + num(total) + "”", total - free === (card.total_purchased || 0) && free
        ? "this period's prepaid units: " + num(total - free) + " purchased + " + num(free) + " free tier"
        : "this period's prepaid units (purchased and free tier; a refreshing subscription counts its current period)", "fact--explain");
    }
    if (size > 1 || card.pending_usage) {
      fact("Pending usage", plural(card.pending_usage || 0, unit) + (size > 1 ? " of " + num(size) + " toward the next unit" : ""));
    }
    fact("Shortfall", card.shortfall_units ? plural(card.shortfall_units, chargedUnit) + " not covered" : "None", card.shortfall_units ? "fact--bad" : null);
    if (card.days_remaining !== null && card.days_remaining !== undefined) {
      if (card.days_remaining === 0) {
        fact("Days remaining", card.payg ? "None left in prepaid units; Pay as You Go covers further use" : "None left");
      } else {
        fact("Days remaining", "About " + days(card.days_remaining) +
          (card.projected_depletion_date ? " · runs out " + date(card.projected_depletion_date) : ""));
      }
    } else {
      fact("Days remaining", total > 0 ? "No recent usage to project from" : "Nothing prepaid to run out");
    }

    var timing = [];
    if (card.ends_in_days !== null && card.ends_in_days !== undefined) {
      timing.push(el("span", { class: "chip", title: "Access ends " + date(card.ends_at) }, "Ends in " + days(card.ends_in_days)));
    }
    if (card.refreshes_in_days !== null && card.refreshes_in_days !== undefined) {
      timing.push(el("span", { class: "chip", title: "Balance refreshes " + date(card.refreshes_at) }, "Refreshes in " + days(card.refreshes_in_days)));
    }

    // one story per card: past due and the warnings decide the badge and the card's colour; the
    // contract's status word stays as it is, and is shown beside them when they differ
    var warnings = cardWarnings(card, chargedUnit);
    var pastDue = isPastDue(card);
    var badge = pastDue ? ["Past due", "exhausted"]
      : available === 0 && card.payg && status !== "exhausted" ? ["Pay as You Go", status]
        : status === "ok" && warnings.length ? [warnings[0].badge, "low"] : [STATUS_LABELS[status], status];
    if (badge[0] !== STATUS_LABELS[status]) {
      fact("Balance status", STATUS_LABELS[status] + (status === "ok" && total === 0 ? ": no prepaid units to run low (Pay as You Go only)"
        : status === "ok" ? ": above the low-balance threshold of this period's units"
        : status === "low" ? ": at or below the low-balance threshold of this period's units" : ""), "fact--explain");
    }
    var article = el("article", { class: "card card--" + badge[1] + (pastDue ? " card--past-due" : ""), "aria-labelledby": headingId,
      "data-resource-id": card.resource_id, "data-status": card.status, "data-past-due": pastDue ? "true" : null },
      el("header", { class: "card__head" },
        el("div", null,
          el("h3", { id: headingId, class: "card__title" }, card.display_name || card.resource_id),
          el("span", { class: "kind" }, card.kind === "api" ? "API" : "Resource")
        ),
        el("span", { class: "status card__badge status--" + badge[1] }, badge[0])
      ),
      warnings.length ? el("ul", { class: "card__warnings" }, warnings.map(function (warning) {
        return el("li", { class: "card__warning card__warning--" + warning.level, "data-warning": warning.kind }, warning.text, warning.action || null);
      })) : null,
      el("p", { class: "card__balance" },
        el("span", { class: "available-text" }, num(available) + " of " + num(total) + " available"),
        total === 0 && card.payg ? el("span", { class: "card__balance-note" }, "Pay as You Go only: no prepaid units") : null
      ),
      el("div", {
        class: "meter", role: "meter", "aria-valuemin": 0, "aria-valuemax": total, "aria-valuenow": available,
        "aria-label": "Available " + (card.display_name || card.resource_id),
      }, el("span", { class: "meter__fill", "data-percent": Math.round(percent) })),
      timing.length ? el("p", { class: "chips" }, timing) : null,
      facts,
      subscriptionList(card, chargedUnit),
      card.payg ? paygBlock(card.payg, chargedUnit, paygZone(card)) : null
    );
    // width via CSSOM (the page's CSP forbids inline style attributes being parsed from markup)
    article.querySelector(".meter__fill").style.width = percent + "%";
    return article;
  }

  function isPastDue(card) {
    return !!(card.payg && card.payg.status === "past_due");
  }

  function paygRow(card) {
    var id = card.payg && card.payg.subscription_id;
    return (card.subscriptions || []).filter(function (sub) { return sub.subscription_id === id; })[0] || null;
  }

  function paygZone(card) {
    var row = paygRow(card);
    return (row && row.timezone) || null;
  }

  /** What a customer must read on the card whatever its status word: a past-due Pay as You Go (with
   * where to update the card), a run-out inside the alert windows (10 days) and uncovered usage. */
  function cardWarnings(card, chargedUnit) {
    var list = [];
    if (isPastDue(card)) {
      var row = paygRow(card);
      list.push({ kind: "past_due", level: "bad", badge: "Past due",
        text: "Past due: an invoice could not be charged, so Pay as You Go covers no more usage until it is paid. ",
        action: capabilities().payment && mayPayFor(row)
          ? el("a", { class: "card__action", href: link(state.team, "payment", row ? row.subscription_id : null) }, "Update the card")
          : "Ask " + (row && row.purchaser_user_id ? row.purchaser_user_id + " (the purchaser) or " : "") + "a primary admin of the team to update the card." });
    }
    var daysLeft = card.days_remaining;
    if (daysLeft !== null && daysLeft !== undefined && daysLeft <= 10 && card.status !== "exhausted" && (card.available || 0) > 0) {
      var when = "about " + days(daysLeft) + (card.projected_depletion_date ? " (" + date(card.projected_depletion_date) + ")" : "");
      list.push({ kind: "runs_out", level: "warn", badge: "Runs out soon",
        text: (card.payg ? "Prepaid units run out in " + when + " at the last 7 days' rate; Pay as You Go covers usage after that. "
          : "Runs out in " + when + " at the last 7 days' rate of use. "),
        action: el("a", { class: "card__action", href: link(state.team, "usage", null, { resource_id: card.resource_id }) }, "See the usage") });
    }
    if (card.shortfall_units) {
      list.push({ kind: "shortfall", level: "warn", badge: "Usage not covered",
        text: plural(card.shortfall_units, chargedUnit) + " used with nothing to cover them (recorded, never dropped). " +
          "Ask your account manager for more capacity or Pay as You Go.", action: null });
    }
    return list;
  }

  function subscriptionList(card, chargedUnit) {
    var subs = card.subscriptions || [];
    if (!subs.length) return null;
    return el("details", { class: "subs" },
      el("summary", null, "Subscriptions (" + subs.length + ", in consumption order)"),
      el("ol", { class: "subs__list" }, subs.map(function (sub) {
        var amount = sub.type === "payg" || sub.total === null || sub.total === undefined
          ? "no limit, invoiced per cycle"
          : num(sub.available) + " of " + plural(sub.total, chargedUnit);
        var ends = sub.ends_at ? "ends " + date(sub.ends_at) : "no end date";
        return el("li", null,
          el("span", { class: "subs__type" }, TYPE_LABELS[sub.type] || sub.type),
          el("span", { class: "subs__amount" }, amount),
          el("span", { class: "subs__ends" }, ends + (sub.refreshes_at ? ", refreshes " + date(sub.refreshes_at) : ""))
        );
      }))
    );
  }

  function paygEnded(payg) {
    return !!(payg && payg.ends_at && new Date(payg.ends_at) <= new Date());
  }

  function paygBlock(payg, chargedUnit, zone) {
    var pastDue = payg.status === "past_due";
    var ended = paygEnded(payg);
    return el("div", { class: "payg" + (pastDue ? " payg--past-due" : ""), "data-ended": ended ? "true" : null },
      el("p", { class: "payg__title" }, ended
        ? "Pay as You Go — ended " + dateTimeIn(payg.ends_at, zone) + "; final billing cycle"
        : payg.ends_at ? "Pay as You Go — current billing cycle, the last (it ends " + dateTimeIn(payg.ends_at, zone) + ")"
          : "Pay as You Go — current billing cycle",
        el("span", { class: "status payg__status status--" + (pastDue ? "exhausted" : "ok") }, pastDue ? "Past due" : ended ? "Ended" : "Active")),
      ended ? el("p", { class: "payg__ended note" }, "This subscription has ended and covers no further use. Its final invoice, " +
        "for the cycle below, is issued once the cycle closes; the partial unit left over is never charged.") : null,
      el("p", null, el("span", { class: "payg__cycle" }, date(payg.cycle_start) + " – " + date(payg.cycle_end)),
        el("span", { class: "sub payg__zone" }, zoneNote(zone))),
      el("p", null,
        el("span", { class: "payg__units" }, plural(payg.charged_units || 0, chargedUnit)),
        " · ",
        el("strong", { class: "payg__amount" }, money(payg.amount, payg.currency))
      )
    );
  }

  function periodsBetween(from, to, granularity) {
    var start = parseDate(from);
    var end = parseDate(to);
    var periods = [];
    if (!start || !end || end < start) return periods;
    if (granularity === "month") {
      var cursor = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), 1));
      while (cursor <= end && periods.length < 400) {
        periods.push(isoDate(cursor).slice(0, 7));
        cursor = new Date(Date.UTC(cursor.getUTCFullYear(), cursor.getUTCMonth() + 1, 1));
      }
    } else {
      for (var d = start; d <= end && periods.length < 800; d = addDays(d, 1)) periods.push(isoDate(d));
    }
    return periods;
  }

  function periodLabel(period, granularity, short) {
    if (granularity === "month") {
      var m = parseDate(period + "-01");
      return m ? monthFormat.format(m) : period;
    }
    var d = parseDate(period);
    if (!d) return period;
    return short ? new Intl.DateTimeFormat("en-US", { month: "short", day: "numeric", timeZone: "UTC" }).format(d) : dateFormat.format(d);
  }

  function renderUsage(container, body, asked) {
    var granularity = body.granularity || asked.granularity;
    var group = body.group_by || asked.group_by;
    var series = (body.series || []).map(function (item, index) {
      var values = {};
      var total = 0;
      (item.points || []).forEach(function (point) {
        var quantity = Number(point.quantity) || 0;
        values[point.period] = (values[point.period] || 0) + quantity;
        total += quantity;
      });
      return { label: seriesLabel(item.key, group), values: values, total: total, color: PALETTE[index % PALETTE.length] };
    });
    var periods = periodsBetween(body.from || asked.from, body.to || asked.to, granularity);
    var seen = {};
    periods.forEach(function (p) { seen[p] = true; });
    series.forEach(function (s) {
      Object.keys(s.values).forEach(function (p) { if (!seen[p]) { seen[p] = true; periods.push(p); } });
    });
    periods.sort();
    var grand = series.reduce(function (sum, s) { return sum + s.total; }, 0);
    if (!series.length || grand === 0) {
      replace(container, el("p", { class: "empty" }, "No " + resourceName(asked.resource_id) + " usage in this period."));
      return;
    }
    var units = unitWord(asked.resource_id, 2);
    var figure = el("figure", { class: "chart" },
      usageChart(series, periods, granularity, units),
      el("figcaption", null,
        usageLegend(series, asked.resource_id, periods.length > 1 && series.length > 1),
        el("p", { class: "chart__caption" }, resourceName(asked.resource_id) + ", " +
          (group === "resource" ? "total" : group === "user" ? "by user" : "by app") + ": " + plural(grand, cardOf(asked.resource_id) ? cardOf(asked.resource_id).unit : "base unit") +
          (group === "resource" ? "" : " across the " + series.length + " " + (group === "user" ? "user" : "app") + (series.length === 1 ? "" : "s") + " on this page")))
    );
    replace(container, el("div", { class: "usage" }, figure, usageTable(series, periods, granularity, group, units)));
  }

  function usageLegend(series, resourceId, withTotal) {
    var unit = cardOf(resourceId) ? cardOf(resourceId).unit : "base unit";
    var items = series.map(function (s) {
      var swatch = el("span", { class: "legend__swatch", "aria-hidden": "true" });
      swatch.style.background = s.color;
      return el("li", null, swatch, s.label + " (" + plural(s.total, unit) + ")");
    });
    if (withTotal) {
      items.push(el("li", { class: "legend__total" }, el("span", { class: "legend__line", "aria-hidden": "true" }), "Total of the series shown (dashed line)"));
    }
    return el("ul", { class: "legend" }, items);
  }

  function usageTable(series, periods, granularity, group, units) {
    var groupLabel = group === "user" ? "user" : group === "app" ? "app" : "resource";
    var rows = periods.filter(function (p) {
      return series.some(function (s) { return s.values[p]; });
    });
    var many = series.length > 1;
    return el("div", { class: "table-wrap usage__table", tabindex: "0", role: "region", "aria-label": "Usage table" },
      el("table", { class: "table" },
        el("caption", { class: "visually-hidden" }, "Usage in " + units + " per " + granularity + " by " + groupLabel + " (periods without usage are omitted)"),
        el("thead", null, el("tr", null,
          el("th", { scope: "col" }, granularity === "month" ? "Month" : "Day"),
          series.map(function (s) { return el("th", { scope: "col", class: "num" }, s.label); }),
          many ? el("th", { scope: "col", class: "num" }, "Total") : null
        )),
        el("tbody", null, rows.map(function (p) {
          var total = 0;
          return el("tr", null,
            el("th", { scope: "row" }, periodLabel(p, granularity)),
            series.map(function (s) { var v = s.values[p] || 0; total += v; return el("td", { class: "num" }, num(v)); }),
            many ? el("td", { class: "num" }, num(total)) : null
          );
        })),
        el("tfoot", null, el("tr", null,
          el("th", { scope: "row" }, "Total (" + units + ")"),
          series.map(function (s) { return el("td", { class: "num" }, num(s.total)); }),
          many ? el("td", { class: "num" }, num(series.reduce(function (a, s) { return a + s.total; }, 0))) : null
        ))
      )
    );
  }

  function niceStep(max, ticks) {
    var raw = max / ticks;
    var magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    var residual = raw / magnitude;
    var step = residual > 5 ? 10 : residual > 2 ? 5 : residual > 1 ? 2 : 1;
    return Math.max(1, step * magnitude);
  }

  /** A stacked bar chart in inline SVG: one bar per period, one segment per series. */
  function usageChart(series, periods, granularity, unitName) {
    var width = 720, height = 300;
    var margin = { top: 12, right: 12, bottom: 42, left: 56 };
    var plotW = width - margin.left - margin.right;
    var plotH = height - margin.top - margin.bottom;
    var totals = periods.map(function (p) {
      return series.reduce(function (sum, s) { return sum + (s.values[p] || 0); }, 0);
    });
    var maxTotal = Math.max.apply(null, totals.concat([1]));
    var step = niceStep(maxTotal, 5);
    var yMax = Math.ceil(maxTotal / step) * step;
    var y = function (v) { return margin.top + plotH - (v / yMax) * plotH; };
    var band = plotW / Math.max(periods.length, 1);
    var barW = Math.max(1, band * (periods.length > 60 ? 0.9 : 0.72));

    var root = svg("svg", {
      class: "chart__svg", viewBox: "0 0 " + width + " " + height, role: "img",
      "aria-label": "Stacked bar chart of " + unitName + " per " + granularity + " for " + series.length + " series; the table lists the same numbers",
      preserveAspectRatio: "xMidYMid meet",
    });
    var grid = svg("g", { class: "chart__grid" });
    for (var v = 0; v <= yMax + 1e-9; v += step) {
      grid.appendChild(svg("line", { x1: margin.left, x2: width - margin.right, y1: y(v), y2: y(v) }));
      grid.appendChild(svg("text", { x: margin.left - 8, y: y(v), "text-anchor": "end", "dominant-baseline": "middle", class: "chart__tick" }, compact(v)));
    }
    root.appendChild(grid);

    var bars = svg("g", { class: "chart__bars" });
    periods.forEach(function (period, i) {
      var x = margin.left + i * band + (band - barW) / 2;
      var base = 0;
      series.forEach(function (s) {
        var value = s.values[period] || 0;
        if (!value) return;
        var top = y(base + value);
        var rect = svg("rect", {
          x: x.toFixed(2), y: top.toFixed(2), width: barW.toFixed(2), height: Math.max(0.5, y(base) - top).toFixed(2),
          fill: s.color, "data-period": period,
        }, svg("title", null, periodLabel(period, granularity) + " · " + s.label + ": " + num(value)));
        bars.appendChild(rect);
        base += value;
      });
    });
    root.appendChild(bars);

    // a line over the totals, so trends read at a glance
    var points = periods.map(function (p, i) {
      return (margin.left + i * band + band / 2).toFixed(2) + "," + y(totals[i]).toFixed(2);
    });
    if (periods.length > 1 && series.length > 1) { // the legend names it: "Total (dashed line)"
      root.appendChild(svg("path", { class: "chart__total", d: "M" + points.join(" L"), fill: "none" }));
    }

    var axis = svg("g", { class: "chart__axis" });
    axis.appendChild(svg("line", { x1: margin.left, x2: width - margin.right, y1: y(0), y2: y(0) }));
    var every = Math.max(1, Math.ceil(periods.length / 8));
    periods.forEach(function (period, i) {
      if (i % every !== 0 && i !== periods.length - 1) return;
      if (i === periods.length - 1 && i % every !== 0 && (i % every) < every / 2) return;
      var cx = margin.left + i * band + band / 2;
      axis.appendChild(svg("text", { x: cx.toFixed(2), y: height - margin.bottom + 18, "text-anchor": "middle", class: "chart__tick" },
        periodLabel(period, granularity, true)));
    });
    root.appendChild(axis);
    return root;
  }

  function compact(value) {
    if (value >= 1e6) return (value / 1e6).toFixed(value % 1e6 ? 1 : 0) + "M";
    if (value >= 1e4) return (value / 1e3).toFixed(value % 1e3 ? 1 : 0) + "k";
    return num(value);
  }

  // ------------------------------------------------------------------ invoices view

  function viewInvoices(view, generation, route) {
    if (route.item) return viewInvoice(view, generation, route.item);
    var box = section("invoices", "Invoices");
    var note = el("p", { class: "note", id: "invoices-zone" }, "Pay as You Go is invoiced at the end of each billing cycle. Billing periods and issue dates are in the purchaser's time zone.");
    box.appendChild(note);
    var container = el("div", { id: "invoices", "aria-busy": "true" }, el("p", { class: "loading" }, "Loading invoices…"));
    box.appendChild(container);
    replace(view, box);
    return loadCards(generation).catch(function () { return []; }).then(function () {
      var zones = [];
      cards().forEach(function (card) {
        (card.subscriptions || []).forEach(function (sub) { if (sub.timezone && zones.indexOf(sub.timezone) < 0) zones.push(sub.timezone); });
      });
      if (zones.length) {
        note.textContent = "Pay as You Go is invoiced at the end of each billing cycle. Billing periods and issue dates are in the purchaser's time zone: " +
          zones.join(", ") + ".";
      }
      return loadInvoices(container, generation, null);
    });
  }

  function loadInvoices(container, generation, cursor) {
    var query = "?limit=20" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    return api(teamPath("/invoices" + query)).then(function (body) {
      if (generation !== state.generation) return;
      var items = (body && body.items) || [];
      var tbody = cursor ? container.querySelector("tbody") : null;
      var more = container.querySelector(".load-more");
      if (more) more.remove();
      if (!tbody) {
        if (!items.length) {
          replace(container, el("p", { class: "empty" }, "No invoices yet. Invoices appear after a Pay as You Go billing cycle with charged units closes."));
          return;
        }
        tbody = el("tbody");
        replace(container, el("div", { class: "table-wrap" }, el("table", { class: "table invoices" },
          el("caption", { class: "visually-hidden" }, "Invoices, newest first"),
          el("thead", null, el("tr", null,
            el("th", { scope: "col" }, "Invoice"),
            el("th", { scope: "col" }, "Billing period"),
            el("th", { scope: "col", class: "num" }, "Total"),
            el("th", { scope: "col" }, "Status"),
            el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "Actions"))
          )),
          tbody
        )));
      }
      items.forEach(function (invoice) { tbody.appendChild(invoiceRow(invoice)); });
      if (body && body.next_cursor) {
        container.appendChild(el("button", { type: "button", class: "button button--ghost load-more",
          onclick: function () { loadInvoices(container, generation, body.next_cursor); } }, "Load more invoices"));
      }
    }, function (error) {
      if (generation === state.generation) replace(container, errorBox(error, "Invoices could not be loaded"));
    });
  }

  var INVOICE_STATUS = { paid: ["Paid", "ok"], payment_failed: ["Payment failed", "exhausted"], open: ["Open", "low"], uncollectible: ["Uncollectible", "exhausted"], void: ["Void (credited in full)", "ok"] };

  /** Under an invoice's total: what its credit notes took off, and what is still due. */
  function creditedNote(invoice) {
    if (!invoice.credited) return null;
    return el("span", { class: "sub credited" }, "Credited " + money(invoice.credited, invoice.currency) +
      (invoice.amount_due ? " · due " + money(invoice.amount_due, invoice.currency) : ""));
  }

  function invoiceZone(invoice) {
    var sub = paymentSubOf(invoice.subscription_id).sub;
    return (sub && sub.timezone) || null;
  }

  function invoiceRow(invoice) {
    var status = INVOICE_STATUS[invoice.status] || [String(invoice.status || "–"), "low"];
    var period = date(invoice.period_start) + " – " + date(invoice.period_end);
    return el("tr", { "data-invoice-id": invoice.invoice_id },
      el("td", null, invoiceName(invoice.number, invoice.invoice_id), el("span", { class: "sub" }, (invoice.lines || []).map(function (line) { return resourceName(line.resource_id); }).join(", "))),
      el("td", null, period, invoice.issued_at ? el("span", { class: "sub" }, "Issued " + dateIn(invoice.issued_at, invoiceZone(invoice))) : null),
      el("td", { class: "num" }, money(invoice.total, invoice.currency), creditedNote(invoice)),
      el("td", null, el("span", { class: "status status--" + status[1] }, status[0])),
      el("td", { class: "actions" }, el("a", { class: "button button--small invoice-open", href: link(state.team, "invoices", invoice.invoice_id), "aria-label": "View invoice for " + period }, "View"))
    );
  }

  function viewInvoice(view, generation, invoiceId) {
    var box = section("invoice", "Invoice");
    box.appendChild(el("p", { class: "crumbs" }, el("a", { href: link(state.team, "invoices") }, "← All invoices")));
    var container = el("div", { id: "invoice-view", "aria-busy": "true" }, el("p", { class: "loading" }, "Loading invoice…"));
    box.appendChild(container);
    replace(view, box);
    var path = teamPath("/invoices/" + encodeURIComponent(invoiceId));
    var read = api(path).catch(function () { return null; });
    return Promise.all([api(path, { accept: "text/html" }), read]).then(function (results) {
      if (generation !== state.generation) return;
      var html = results[0], invoice = results[1];
      var shown = typeof html === "string" ? invoiceDocument(html, invoiceId) : el("pre", null, JSON.stringify(html, null, 2));
      replace(container, invoice && invoice.action_required ? confirmBox(invoiceId, generation) : null, shown);
    }, function (error) {
      if (generation === state.generation) replace(container, errorBox(error, "The invoice could not be shown"));
    });
  }

  /** The email's link lands here: the bank asks the customer to confirm the payment (3-D Secure). */
  function confirmBox(invoiceId, generation) {
    var note = el("div", { class: "payment-form-message", "aria-live": "polite" });
    var button = el("button", { type: "button", class: "button invoice-confirm", onclick: function () {
      button.disabled = true;
      replace(note, el("p", { class: "loading" }, "Confirming the payment…"));
      payInvoice(invoiceId).then(function (paid) {
        if (generation !== state.generation) return;
        if (paid.status === "paid") return render();
        button.disabled = false;
        replace(note, el("p", { class: "payment-message error", role: "status" }, paymentOutcome(paid)));
      }, function (error) {
        button.disabled = false;
        replace(note, errorBox(error, "The payment could not be confirmed"));
      });
    } }, "Confirm payment");
    return el("div", { class: "notice notice--warning invoice-action", role: "region", "aria-label": "Payment needs confirmation" },
      el("p", null, "Your bank asks you to confirm this payment (3-D Secure)."), button, note);
  }

  var INERT_TAGS = "script, iframe, frame, object, embed, link, meta, base, form, input, button, textarea, select, noscript, template";

  /** The API's rendered invoice, inline in the page (no frame, no scrollbar of its own): parsed by
   * DOMParser into an inert document (nothing in it runs), stripped of anything active (scripts,
   * frames, forms, on* handlers, javascript: links), then moved into a shadow root so that its own
   * styles stay on the invoice and the page's stay off it. */
  function invoiceDocument(html, invoiceId) {
    var parsed = new DOMParser().parseFromString(html, "text/html");
    Array.prototype.forEach.call(parsed.querySelectorAll(INERT_TAGS), function (node) { node.remove(); });
    Array.prototype.forEach.call(parsed.querySelectorAll("*"), function (node) {
      Array.prototype.slice.call(node.attributes).forEach(function (attr) {
        var name = attr.name.toLowerCase();
        if (name.slice(0, 2) === "on" || ((name === "href" || name === "src") && !/^(https?:|#|data:image\/)/i.test(attr.value.trim()))) {
          node.removeAttribute(attr.name);
        }
      });
    });
    var host = el("div", { class: "invoice-doc", role: "document", "aria-label": "Invoice " + invoiceId });
    var root = host.attachShadow({ mode: "open" });
    // the invoice's own rules for its <body> apply to the host here
    root.appendChild(el("style", null, ":host { display: block; background: #fff; color: #1f2933; } .invoice-doc__body { max-width: 680px; margin: 24px auto; padding: 0 16px; }"));
    Array.prototype.forEach.call(parsed.querySelectorAll("style"), function (style) {
      root.appendChild(el("style", null, style.textContent.replace(/(^|[}\s,])body(?=[\s{,])/g, "$1.invoice-doc__body")));
      style.remove();
    });
    var body = el("div", { class: "invoice-doc__body" });
    Array.prototype.slice.call(parsed.body.childNodes).forEach(function (node) { body.appendChild(document.importNode(node, true)); });
    root.appendChild(body);
    return host;
  }

  // ------------------------------------------------------------------ settings: alerts view and sidebar

  function viewAlerts(view, generation) {
    var can = capabilities();
    var box = section("alerts", "Run-out alerts");
    box.appendChild(el("p", { class: "note" }, "An alert emails its recipients when a resource is projected to run out within 10 or 5 days at the last 7 days' rate of use, once per window, again after the balance recovers."));
    if (can.manageAlerts) {
      box.appendChild(el("p", null, el("button", { type: "button", class: "button", id: "alert-new", onclick: openSidebar }, "Create alert")));
    }
    var container = el("div", { id: "alerts", "aria-busy": "true" }, el("p", { class: "loading" }, "Loading alerts…"));
    box.appendChild(container);
    replace(view, box);
    return loadCards(generation).catch(function () { return []; }).then(function () { return loadAlerts(container, generation); });
  }

  function loadAlerts(container, generation) {
    container = container || $("alerts");
    return api(teamPath("/alerts?limit=100")).then(function (body) {
      if (generation !== state.generation || !container) return;
      var items = (body && body.items) || [];
      if (!items.length) {
        replace(container, el("p", { class: "empty" }, "No saved alerts." + (capabilities().manageAlerts ? " Create one to be told before a resource runs out." : "")));
        return;
      }
      replace(container, el("ul", { class: "alert-list" }, items.map(alertItem)));
    }, function (error) {
      if (generation === state.generation) replace(container, errorBox(error, "Alerts could not be loaded"));
    });
  }

  function alertItem(alert) {
    var windows = (alert.windows_days || []).slice().sort(function (a, b) { return b - a; });
    var ineligible = alert.ineligible_recipient_user_ids || [];
    var message = el("div", { class: "alert-item__message", role: "status", "aria-live": "polite" });
    var item = el("li", { class: "alert-item", "data-alert-id": alert.alert_id },
      el("div", { class: "alert-item__main" },
        el("p", { class: "alert-item__name" }, alert.name || "(unnamed)"),
        el("p", { class: "alert-item__detail" }, "Notify when projected to run out within " + windows.join(" and ") + " days"),
        el("p", { class: "alert-item__detail" }, "Resources: " + (alert.resource_ids || []).map(resourceName).join(", ")),
        el("p", { class: "alert-item__detail" }, "Recipients: ", (alert.recipient_user_ids || []).map(function (user, i) {
          var gone = ineligible.indexOf(user) >= 0;
          return [i ? ", " : "", gone ? el("span", { class: "ineligible", title: "No longer an admin of the team: receives nothing" }, user + " (no longer an admin)") : user];
        })),
        ineligible.length && ineligible.length === (alert.recipient_user_ids || []).length
          ? el("p", { class: "ineligible" }, "No recipient is an admin any more: the team's primary admins receive this alert.") : null,
        alert.created_at ? el("p", { class: "alert-item__meta" }, "Created " + dateTime(alert.created_at) + (alert.created_by ? " by " + alert.created_by : "")) : null,
        message
      )
    );
    if (capabilities().manageAlerts) {
      var button = el("button", { type: "button", class: "button button--danger button--small alert-delete", "aria-label": "Delete alert " + (alert.name || "") }, "Delete");
      button.addEventListener("click", function () {
        button.disabled = true;
        button.textContent = "Deleting…";
        var generation = state.generation;
        api(teamPath("/alerts/" + encodeURIComponent(alert.alert_id)), { method: "DELETE" }).then(
          function () { loadAlerts(null, generation); },
          function (error) {
            button.disabled = false;
            button.textContent = "Delete";
            replace(message, errorBox(error, "Not deleted"));
          }
        );
      });
      item.appendChild(button);
    }
    return item;
  }

  /** Every member, a page at a time (GET /members pages by user id). */
  function allMembers(cursor, sofar, pages) {
    var query = "?limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    return api(teamPath("/members" + query)).then(function (body) {
      var items = (sofar || []).concat((body && body.items) || []);
      return body && body.next_cursor && pages > 1 ? allMembers(body.next_cursor, items, pages - 1) : items;
    });
  }

  function isAdminRoles(roles) {
    return (roles || []).some(function (role) { return role === "primary_admin" || role === "secondary_admin" || role === "sso_admin"; });
  }

  function openSidebar() {
    var sidebar = $("sidebar");
    var body = $("sidebar-body");
    sidebar.hidden = false;
    loading(body, "Loading the team's members…");
    var generation = state.generation;
    allMembers(null, [], 50).then(function (members) {
      if (generation !== state.generation) return;
      replace(body, alertForm(members));
      $("alert-name").focus();
    }, function (error) {
      if (generation === state.generation) replace(body, errorBox(error, "Members could not be loaded"));
    });
  }

  function closeSidebar() {
    $("sidebar").hidden = true;
    replace($("sidebar-body"));
  }

  function alertForm(members) {
    var admins = members.filter(function (member) { return isAdminRoles(member.roles); });
    var others = members.filter(function (member) { return !isAdminRoles(member.roles); });
    var form = el("form", { id: "alert-form", novalidate: true, autocomplete: "off" },
      el("div", { class: "field" }, el("label", { for: "alert-name" }, "Alert name"),
        el("input", { id: "alert-name", name: "name", type: "text", maxlength: 200, required: true })),
      el("fieldset", { class: "field" }, el("legend", null, "Notify when a resource is projected to run out within"),
        el("label", { class: "check" }, el("input", { type: "checkbox", name: "window", value: "10", checked: true }), " 10 days"),
        el("label", { class: "check" }, el("input", { type: "checkbox", name: "window", value: "5" }), " 5 days")),
      el("fieldset", { class: "field" }, el("legend", null, "Resources to monitor"),
        el("div", { id: "alert-resources", class: "checks" }, cards().length ? cards().map(function (card) {
          return el("label", { class: "check" }, el("input", { type: "checkbox", name: "resource", value: card.resource_id }),
            " " + (card.display_name || card.resource_id) + (card.kind === "api" ? " (API)" : ""));
        }) : el("p", { class: "hint" }, "This team has no resources to monitor."))),
      el("fieldset", { class: "field" }, el("legend", null, "Recipients (the team's admins)"),
        el("div", { id: "alert-recipients", class: "checks" },
          admins.map(function (member) {
            return el("label", { class: "check" }, el("input", { type: "checkbox", name: "recipient", value: member.user_id, checked: member.user_id === state.me.user_id }),
              " " + member.user_id + " · " + member.email + " (" + rolesText(member.roles) + ")");
          }),
          others.map(function (member) {
            return el("label", { class: "check check--off", title: "Alerts go to admins only" },
              el("input", { type: "checkbox", name: "ineligible", value: member.user_id, disabled: true }),
              " " + member.user_id + " · " + (member.roles.length ? rolesText(member.roles) : "no role") + ": not an admin, cannot receive alerts");
          }))),
      el("div", { id: "alert-form-message", class: "form-message", role: "status", "aria-live": "polite" }),
      el("button", { type: "submit", class: "button", id: "alert-submit" }, "Create alert")
    );
    form.addEventListener("submit", submitAlert);
    return form;
  }

  function checkedValues(form, name) {
    return Array.prototype.filter.call(form.querySelectorAll("input[name=" + name + "]"), function (input) {
      return input.checked;
    }).map(function (input) { return input.value; });
  }

  function submitAlert(event) {
    event.preventDefault();
    var form = $("alert-form");
    var message = $("alert-form-message");
    var payload = {
      name: $("alert-name").value.trim(),
      windows_days: checkedValues(form, "window").map(Number),
      resource_ids: checkedValues(form, "resource"),
      recipient_user_ids: checkedValues(form, "recipient"),
    };
    var missing = [];
    if (!payload.name) missing.push({ path: "name", message: "Give the alert a name." });
    if (!payload.windows_days.length) missing.push({ path: "windows_days", message: "Choose 10 days, 5 days or both." });
    if (!payload.resource_ids.length) missing.push({ path: "resource_ids", message: "Choose at least one resource." });
    if (!payload.recipient_user_ids.length) missing.push({ path: "recipient_user_ids", message: "Choose at least one recipient." });
    if (missing.length) {
      replace(message, errorBox(new ApiError(0, { title: "Check the form", errors: missing })));
      return;
    }
    var button = $("alert-submit");
    button.disabled = true;
    replace(message, el("p", { class: "hint" }, "Saving…"));
    var generation = state.generation;
    api(teamPath("/alerts"), { method: "POST", body: payload }).then(function (created) {
      button.disabled = false;
      replace(message, el("p", { class: "success" }, "Alert “" + ((created && created.name) || payload.name) + "” created."));
      $("alert-name").value = "";
      loadAlerts(null, generation);
    }, function (error) {
      button.disabled = false;
      replace(message, error.status === 409
        ? errorBox(error, "Not created: an alert with this configuration already exists", true)
        : errorBox(error, "Not created"));
    });
  }

  // ------------------------------------------------------------------ settings: payment method view

  function viewPayment(view, generation, route) {
    var box = section("payment", "Payment method");
    box.appendChild(el("p", { class: "note" }, "Pay as You Go subscriptions are charged to their card when a billing cycle closes. " +
      "A failed charge is retried 1, 3, 5 and 7 days later; a new card is charged at once for every failed invoice."));
    var container = el("div", { id: "payment", class: "cards", "aria-busy": "true" }, el("p", { class: "loading" }, "Loading…"));
    box.appendChild(container);
    replace(view, box);
    state.balancesFor = null;
    return loadCards(generation).then(function (list) {
      if (generation !== state.generation) return;
      var payg = list.filter(function (card) {
        return card.payg && (!route.item || card.payg.subscription_id === route.item ||
          (card.subscriptions || []).some(function (sub) { return sub.subscription_id === route.item; }));
      });
      if (!payg.length) {
        replace(container, el("p", { class: "empty" }, route.item ? "Subscription “" + route.item + "” is not a Pay as You Go subscription of this team." : "This team has no Pay as You Go subscription."));
        return;
      }
      replace(container, payg.map(function (card) {
        var subs = (card.subscriptions || []).filter(function (sub) { return sub.type === "payg" && (!route.item || sub.subscription_id === route.item); });
        var ended = card.payg.subscription_id;  // an ended payg is no longer a row; its invoices are still collected
        if (ended && (!route.item || ended === route.item) && !subs.some(function (sub) { return sub.subscription_id === ended; })) {
          subs.push({ subscription_id: ended, type: "payg" });
        }
        return el("article", { class: "card card--wide" + (isPastDue(card) ? " card--exhausted card--past-due" : ""), "data-resource-id": card.resource_id },
          el("header", { class: "card__head" }, el("h3", { class: "card__title" }, card.display_name || card.resource_id), el("span", { class: "kind" }, "Pay as You Go")),
          paygBlock(card.payg, (card.charge_unit_size || 1) > 1 ? "charged unit" : card.unit, paygZone(card)),
          subs.map(function (sub) {
            var panel = el("div", { class: "payment-panel", "data-payment-for": sub.subscription_id, "aria-busy": "true" }, el("p", { class: "loading" }, "Loading the card…"));
            var holder = el("div", { class: "payment-sub" },
              el("p", null, el("span", { class: "chip", "data-subscription-id": sub.subscription_id }, subscriptionName(card, sub, subs.length > 1))),
              panel);
            panel.payg = card.payg;  // what "Cancel Pay as You Go" says the final invoice covers
            panel.unitLabel = (card.charge_unit_size || 1) > 1 ? "charged unit" : card.unit;
            drawPaymentPanel(panel, sub.subscription_id, generation, null);
            return holder;
          })
        );
      }));
    }, function (error) {
      if (generation === state.generation) replace(container, errorBox(error, "Balances could not be loaded"));
    });
  }

  /** A subscription as a customer names it: "Processing minutes · Pay as You Go" (its start date
   * when the resource has more than one of the type). */
  function subscriptionName(card, sub, withStart) {
    return (card.display_name || card.resource_id) + " · " + (TYPE_LABELS[sub.type] || sub.type) +
      (withStart && sub.starts_at ? " since " + date(sub.starts_at) : "");
  }

  /** The payg subscription's card and row (purchaser, zone) from the team's cards. */
  function paymentSubOf(subscriptionId) {
    for (var i = 0; i < cards().length; i++) {
      var subs = cards()[i].subscriptions || [];
      for (var j = 0; j < subs.length; j++) if (subs[j].subscription_id === subscriptionId) return { card: cards()[i], sub: subs[j] };
    }
    return { card: null, sub: null };
  }

  /** Whether the caller may see and change the subscription's card (contract section 2: the
   * purchaser or a primary admin): decided here, so that no request is made that would be refused. */
  function mayPayFor(sub) {
    return has("primary_admin") || !!(sub && state.me && sub.purchaser_user_id === state.me.user_id);
  }

  function invoiceName(number, invoiceId) {
    return number ? "Invoice " + number : "Invoice " + invoiceId;
  }

  function subscriptionPath(subscriptionId, suffix) {
    return teamPath("/subscriptions/" + encodeURIComponent(subscriptionId) + "/payment-method" + (suffix || ""));
  }

  function cardText(card) {
    if (!card) return "No card saved.";
    var brand = String(card.brand || "card");
    return brand.charAt(0).toUpperCase() + brand.slice(1) + " ending in " + card.last4 + ", expires " +
      String(card.exp_month).padStart(2, "0") + "/" + card.exp_year;
  }

  /** One payg subscription: its card and "Update card" (purchaser or primary admin; others are told
   * why not), then its invoices with status, next attempt and "Pay now" for the failed ones. */
  function drawPaymentPanel(panel, subscriptionId, generation, message) {
    loading(panel, "Loading the card…");
    var owner = paymentSubOf(subscriptionId);
    var zone = (owner.sub && owner.sub.timezone) || null;
    var cardRead = mayPayFor(owner.sub)
      ? api(teamPath("/subscriptions/" + encodeURIComponent(subscriptionId))).then(function (body) { return { body: body }; }, function (error) { return { error: error }; })
      : Promise.resolve({ refused: true });
    var invoicesRead = api(teamPath("/invoices?limit=100")).then(function (body) {
      return ((body && body.items) || []).filter(function (invoice) { return invoice.subscription_id === subscriptionId; });
    }, function (error) { return error; });
    return Promise.all([cardRead, invoicesRead]).then(function (results) {
      if (generation !== state.generation) return;
      var card = results[0];
      var invoices = results[1];
      var mayPay = !!card.body;
      var top;
      if (card.body) {
        var pm = card.body.payment_method;
        top = el("div", { class: "payment-card" },
          el("p", { class: "payment-card__text", "data-payment-method-id": pm ? pm.id : null }, cardText(pm)),
          card.body.purchaser_user_id ? el("p", { class: "hint" }, "Purchaser: " + card.body.purchaser_user_id) : null,
          el("button", { type: "button", class: "button button--small payment-update", onclick: function (event) {
            startCardUpdate(panel, subscriptionId, generation, event.target);
          } }, "Update card"),
          el("div", { class: "payment-form-slot" }),
          paygEnded(panel.payg) ? null : cancelControl(panel, subscriptionId, generation));
      } else if (card.refused || (card.error && card.error.status === 403)) {
        var purchaser = owner.sub && owner.sub.purchaser_user_id;
        top = el("p", { class: "payment-absent explain-inline" }, "The card is shown only to the subscription's purchaser" +
          (purchaser ? " (" + purchaser + ")" : "") + " and the team's primary admins: " +
          "they can update it and pay failed invoices. Ask one of them if a payment failed.");
      } else {
        top = errorBox(card.error, "The card could not be loaded");
      }
      var numbers = {};
      if (Array.isArray(invoices)) invoices.forEach(function (invoice) { numbers[invoice.invoice_id] = invoice.number; });
      panel.invoiceNumbers = numbers; // the card update's message names the invoices it retried
      var failed = Array.isArray(invoices) ? invoices.filter(function (invoice) {
        return invoice.status === "payment_failed" || invoice.status === "uncollectible";
      }) : [];
      var rows = Array.isArray(invoices) ? paymentInvoices(invoices, mayPay, panel, subscriptionId, generation)
        : errorBox(invoices, "Invoices could not be loaded");
      replace(panel, message ? el("div", { class: "payment-message " + message.kind, role: "status" }, message.text) : null,
        failed.length ? pastDueNotice(failed, mayPay, owner.sub, panel, subscriptionId, generation) : null,
        top, Array.isArray(invoices) && invoices.length ? el("p", { class: "hint payment-zone" }, zoneNote(zone)) : null, rows);
    });
  }

  /** Past due in the payment settings: which invoices failed, what that stops, and what to do. */
  function pastDueNotice(failed, mayPay, sub, panel, subscriptionId, generation) {
    var names = failed.map(function (invoice) { return invoiceName(invoice.number, invoice.invoice_id); });
    var what = (names.length === 1 ? names[0] + " could not be charged" : names.join(", ") + " could not be charged") +
      ", so this Pay as You Go is past due: it covers no more usage until " + (names.length === 1 ? "it is" : "they are") + " paid. ";
    if (!mayPay) {
      return el("div", { class: "payment-past-due", role: "alert" }, what + "Ask " +
        (sub && sub.purchaser_user_id ? sub.purchaser_user_id + " (the purchaser) or " : "") + "a primary admin of the team to update the card.");
    }
    return el("div", { class: "payment-past-due", role: "alert" }, what + "Update the card: every failed invoice is charged to the new card at once. ",
      el("button", { type: "button", class: "link-button payment-past-due__update", onclick: function (event) {
        var update = panel.querySelector(".payment-update"); // the card's own button opens the form
        if (update && !update.disabled) startCardUpdate(panel, subscriptionId, generation, update);
        event.target.disabled = true;
      } }, "Update the card now"));
  }

  /** "Cancel Pay as You Go" (the purchaser and primary admins: whoever may read the card here), with a
   * confirmation of what the final invoice will cover: the open cycle up to now, billed when it closes. */
  function cancelControl(panel, subscriptionId, generation) {
    var slot = el("div", { class: "payg-cancel" });
    var start = el("button", { type: "button", class: "button button--small button--danger payg-cancel__start", onclick: function () {
      var payg = panel.payg || {};
      var covers = payg.cycle_start
        ? "The final invoice will cover " + date(payg.cycle_start) + " – today: " + plural(payg.charged_units || 0, panel.unitLabel || "unit") +
          " so far (" + money(payg.amount || 0, payg.currency) + "), plus any usage recorded before now that is still being counted. " +
          "It is issued and charged once the cycle closes; the partial unit left over is never charged."
        : "The final invoice will cover the current billing cycle up to now, once it closes.";
      replace(slot, el("div", { class: "payg-cancel__confirm", role: "alertdialog", "aria-label": "Cancel Pay as You Go" },
        el("p", null, el("strong", null, "Cancel Pay as You Go now?"), " From now on it covers no usage: further use counts against the team's other subscriptions, or as shortfall."),
        el("p", { class: "payg-cancel__covers" }, covers),
        el("button", { type: "button", class: "button button--small button--danger payg-cancel__confirm-button", onclick: function (event) {
          event.target.disabled = true;
          api(teamPath("/subscriptions/" + encodeURIComponent(subscriptionId) + "/cancel"), { method: "POST" }).then(function () {
            if (generation === state.generation) render();
          }, function (error) {
            event.target.disabled = false;
            slot.appendChild(errorBox(error, "Not cancelled"));
          });
        } }, "Yes, cancel Pay as You Go"),
        " ",
        el("button", { type: "button", class: "button button--small payg-cancel__keep", onclick: function () { replace(slot, start); } }, "Keep it")));
    } }, "Cancel Pay as You Go");
    slot.appendChild(start);
    return slot;
  }

  function paymentInvoices(invoices, mayPay, panel, subscriptionId, generation) {
    if (!invoices.length) return el("p", { class: "empty" }, "No invoices for this subscription yet.");
    var owner = paymentSubOf(subscriptionId);
    var zone = (owner.sub && owner.sub.timezone) || null; // the purchaser's zone, as the invoice itself uses
    return el("div", { class: "table-wrap" }, el("table", { class: "table payment-invoices" },
      el("caption", { class: "visually-hidden" }, "Invoices of " + (owner.card ? subscriptionName(owner.card, owner.sub) : "this subscription") + ", newest first"),
      el("thead", null, el("tr", null,
        el("th", { scope: "col" }, "Invoice"), el("th", { scope: "col", class: "num" }, "Total"), el("th", { scope: "col" }, "Status"),
        el("th", { scope: "col" }, "Next attempt"), el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "Actions")))),
      el("tbody", null, invoices.map(function (invoice) {
        var status = INVOICE_STATUS[invoice.status] || [String(invoice.status || "–"), "low"];
        var failed = invoice.status === "payment_failed" || invoice.status === "uncollectible";
        return el("tr", { "data-invoice-id": invoice.invoice_id, "data-status": invoice.status },
          el("td", null, el("a", { href: link(state.team, "invoices", invoice.invoice_id) }, invoiceName(invoice.number, invoice.invoice_id)),
            el("span", { class: "sub" }, date(invoice.period_start) + " – " + date(invoice.period_end))),
          el("td", { class: "num" }, money(invoice.total, invoice.currency), creditedNote(invoice)),
          el("td", null, el("span", { class: "status status--" + status[1] }, status[0]),
            el("span", { class: "sub" }, invoice.attempt_count + " attempt" + (invoice.attempt_count === 1 ? "" : "s") +
              (invoice.paid_at ? " · paid " + dateTimeIn(invoice.paid_at, zone) : ""))),
          el("td", { class: "next-attempt" }, invoice.next_payment_attempt ? dateTimeIn(invoice.next_payment_attempt, zone)
            : invoice.status === "uncollectible" ? "None: no more automatic attempts" : "–"),
          el("td", { class: "actions" }, failed && mayPay ? el("button", { type: "button", class: "button button--small invoice-pay", onclick: function (event) {
            event.target.disabled = true;
            payInvoice(invoice.invoice_id).then(function (paid) {
              drawPaymentPanel(panel, subscriptionId, generation, { kind: paid.status === "paid" ? "success" : "error", text: paymentOutcome(paid) });
              if (paid.status === "paid") refreshNotices(generation);
            }, function (error) {
              event.target.disabled = false;
              panel.insertBefore(errorBox(error, "The payment could not be made"), panel.firstChild);
            });
          } }, invoice.action_required ? "Confirm payment" : "Pay now") : null));
      }))));
  }

  /** POST .../pay; when the bank asks the customer to confirm (3-D Secure), Stripe.js shows its
   * dialog for the on-session PaymentIntent, then the same call records the confirmed payment (the
   * processor's event may have recorded it first: then 409, and the invoice is read instead). */
  function payInvoice(invoiceId) {
    var path = teamPath("/invoices/" + encodeURIComponent(invoiceId));
    return api(path + "/pay", { method: "POST" }).then(function (paid) {
      if (!paid.next_action) return paid;
      return loadStripeJs().then(function (Stripe) {
        return Stripe(paid.next_action.publishable_key).confirmCardPayment(paid.next_action.client_secret);
      }).then(function (result) {
        if (result.error) throw new ApiError(0, { title: "The payment was not confirmed", detail: result.error.message || String(result.error) });
        return api(path + "/pay", { method: "POST" }).catch(function (error) {
          if (error.status === 409) return api(path);
          throw error;
        });
      });
    });
  }

  function paymentOutcome(paid) {
    var name = invoiceName(paid.number, paid.invoice_id);
    if (paid.status === "paid") return name + " was charged and paid.";
    if (paid.action_required) return name + " still needs your bank's confirmation. Confirm the payment, or update the card.";
    return name + " was declined again on the saved card. Update the card: the new card is charged for it at once.";
  }

  var stripeJs = null;
  /** Stripe.js from config.json's stripeJsUrl (Stripe's, or localstripe's stand-in locally), once. */
  function loadStripeJs() {
    if (!stripeJs) {
      stripeJs = fetch("web/config.json", { cache: "no-store" }).then(function (response) { return response.json(); }).then(function (config) {
        if (!config.stripeJsUrl) throw new Error("This deployment has no payment processor configured.");
        return new Promise(function (resolve, reject) {
          var script = document.createElement("script");
          script.src = config.stripeJsUrl;
          script.onload = function () { resolve(window.Stripe); };
          script.onerror = function () { reject(new Error("Stripe.js could not be loaded from " + config.stripeJsUrl)); };
          document.head.appendChild(script);
        });
      });
      stripeJs.catch(function () { stripeJs = null; });
    }
    return stripeJs;
  }

  function startCardUpdate(panel, subscriptionId, generation, button) {
    var slot = panel.querySelector(".payment-form-slot");
    button.disabled = true;
    replace(slot, el("p", { class: "loading" }, "Preparing the card form…"));
    Promise.all([loadStripeJs(), api(subscriptionPath(subscriptionId, "/setup"), { method: "POST" })]).then(function (ready) {
      if (generation !== state.generation) return;
      var setup = ready[1];
      var stripe = ready[0](setup.publishable_key);
      var mount = el("div", { class: "payment-element", id: "card-element-" + subscriptionId.replace(/[^A-Za-z0-9_-]/g, "_") });
      var note = el("div", { class: "payment-form-message", "aria-live": "polite" });
      var save = el("button", { type: "submit", class: "button payment-save" }, "Save card");
      var form = el("form", { class: "payment-form", novalidate: true }, el("p", { class: "hint" }, "The new card is saved for this subscription, and every failed invoice of it is charged to it at once."),
        mount, el("div", { class: "form-actions" }, save,
          el("button", { type: "button", class: "button button--ghost", onclick: function () { drawPaymentPanel(panel, subscriptionId, generation, null); } }, "Cancel")), note);
      replace(slot, form);
      var card = stripe.elements().create("card");
      card.mount(mount);
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        save.disabled = true;
        replace(note, el("p", { class: "loading" }, "Saving the card…"));
        stripe.confirmCardSetup(setup.client_secret, { payment_method: { card: card } }).then(function (result) {
          if (result.error) throw new ApiError(0, { title: "The card was not accepted", detail: result.error.message || String(result.error) });
          var pm = result.setupIntent.payment_method;
          return api(subscriptionPath(subscriptionId), { method: "PUT", body: { payment_method: typeof pm === "string" ? pm : pm.id } });
        }).then(function (saved) {
          var retried = saved.retried_invoices || [];
          var paid = retried.filter(function (item) { return item.status === "paid"; }).length;
          var numbers = panel.invoiceNumbers || {};
          var text = "Card saved: " + cardText(saved.payment_method) + "." + retried.map(function (item) {
            return " " + invoiceName(numbers[item.invoice_id], item.invoice_id) + (item.status === "paid" ? " was charged and paid." : " was declined again on it.");
          }).join("");
          drawPaymentPanel(panel, subscriptionId, generation, { kind: paid === retried.length ? "success" : "error", text: text });
          if (paid) refreshNotices(generation);
        }, function (error) {
          save.disabled = false;
          replace(note, errorBox(error, "The card could not be saved"));
        });
      });
    }, function (error) {
      button.disabled = false;
      replace(slot, errorBox(error, "The card form could not be opened"));
    });
  }

  // ------------------------------------------------------------------ rendering a route

  function loadMe() {
    if (state.me && state.me.user_id === state.user) return Promise.resolve(state.me);
    return api("/v1/me").then(function (me) {
      state.me = me;
      return me;
    });
  }

  function render() {
    state.generation += 1;
    var generation = state.generation;
    var view = $("view");
    closeSidebar();
    loading(view, "Loading…");
    return loadMe().then(function (me) {
      if (generation !== state.generation) return;
      var route = parseHash(window.location.hash);
      state.route = route;
      if (!route.team) {
        if (route.view === "unknown") {
          state.team = null;
          drawChrome();
          replace(view, explain("No such page", "This link does not name a view of this page.", el("p", null, el("a", { href: "#/" }, "Go to your team"))));
          return;
        }
        if (!me.teams.length) {
          state.team = null;
          state.roles = [];
          drawChrome();
          replace(view, explain("You are not a member of any team", "Signed in as " + me.user_id + ". Ask a primary admin of your team to add you."));
          return;
        }
        return go("#/teams/" + encodeURIComponent(me.teams[0].team_id), true);
      }
      if (state.team !== route.team) {
        state.balances = null;
        state.balancesFor = null;
      }
      state.team = route.team;
      var membership = me.teams.filter(function (team) { return team.team_id === route.team; })[0];
      state.roles = membership ? membership.roles : [];
      document.title = "Resource and API Usage · " + (membership ? membership.name || route.team : route.team);
      if (!membership) {
        drawChrome();
        $("banner").hidden = true;
        replace(view, explain("Team not found", "Team “" + route.team + "” does not exist, or " + me.user_id + " is not a member of it." +
          (me.teams.length ? " Choose one of your teams above." : "")));
        return;
      }
      if (route.view === "home" && capabilities().balances) return go(link(state.team, "balances"), true);
      drawChrome();
      if (route.view === "home") {
        $("banner").hidden = true;
        replace(view, explain("Nothing to show for your role", whyNot("balances")));
        return;
      }
      if (route.view === "unknown") {
        replace(view, explain("No such page", "This link does not name a view of this page.", el("p", null, el("a", { href: "#/teams/" + encodeURIComponent(state.team) }, "Go to the team's page"))));
        return;
      }
      var reason = whyNot(route.view);
      if (reason) {
        replace(view, explain("Not shown to you: " + TAB_LABELS[route.view], reason));
        return loadBanner(generation); // a hub admin's notices show on every view

      }
      var shown = route.view === "balances" ? viewBalances(view, generation, route)
        : route.view === "usage" ? viewUsage(view, generation, route)
          : route.view === "invoices" ? viewInvoices(view, generation, route)
            : route.view === "alerts" ? viewAlerts(view, generation)
              : viewPayment(view, generation, route);
      // the banner after the view: its resource names come from the cards the view loaded
      return Promise.resolve(shown).then(function () { return loadBanner(generation); });
    }, function (error) {
      if (generation !== state.generation) return;
      state.me = null;
      drawChrome();
      replace(view, errorBox(error, error.status === 401 ? "You are not signed in" : "Your teams could not be loaded"));
    });
  }

  function start() {
    $("context-form").addEventListener("submit", function (event) { // Refresh: the view again, from the API
      event.preventDefault();
      state.me = null;
      render();
    });
    $("team-select").addEventListener("change", function (event) {
      var view = state.route && VIEWS.indexOf(state.route.view) >= 0 ? state.route.view : "balances";
      go(link(event.target.value, view));
    });
    $("sidebar-close").addEventListener("click", closeSidebar);
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !$("sidebar").hidden) closeSidebar();
    });
    window.addEventListener("hashchange", render);
    render();
  }

  /** Signed in first (web/auth.js: the user, or off to the issuer and back to this route). */
  function signedIn() {
    Auth.ready().then(function (user) {
      state.user = user.sub;
      start();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", signedIn);
  else signedIn();
})();
