/* Resource and API Usage page: plain JS, no build step, no third-party code.
 * Every piece of API data is inserted with textContent / createElement (never innerHTML).
 */
(function () {
  "use strict";

  // ------------------------------------------------------------------ state

  var state = {
    team: "team-demo",
    user: "alice",
    balances: [], // the last cards loaded, for names in the chart, alerts form and banner
    generation: 0, // bumped on every full reload; stale responses are dropped
  };

  var TYPE_LABELS = {
    free: "Free tier",
    token_flex: "Token Flex (EBA)",
    flex: "Flex",
    payg: "Pay as You Go",
  };
  var STATUS_LABELS = { ok: "OK", low: "Low", exhausted: "Exhausted" };
  var PALETTE = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626", "#475569", "#c2410c"];
  var MAX_MONTHS = 24;

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

  function resourceName(resourceId) {
    for (var i = 0; i < state.balances.length; i++) {
      if (state.balances[i].resource_id === resourceId) return state.balances[i].display_name || resourceId;
    }
    return resourceId;
  }

  // ------------------------------------------------------------------ API

  function ApiError(status, problem) {
    this.status = status;
    this.problem = problem || {};
  }

  function teamPath(suffix) {
    return "/v1/teams/" + encodeURIComponent(state.team) + suffix;
  }

  /** fetch with the signed-in identity (web/auth.js); resolves with parsed JSON (or text), rejects with ApiError. */
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
          return body;
        });
      },
      function () {
        throw new ApiError(0, { title: "The API could not be reached", detail: "Check that the local stack is running, then refresh." });
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
    if (error.status) box.appendChild(el("p", { class: "error__status" }, "HTTP " + error.status));
    return box;
  }

  // ------------------------------------------------------------------ banner

  function loadBanner(generation) {
    var banner = $("banner");
    return api(teamPath("/notices")).then(
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
            el("span", { class: "banner__icon", "aria-hidden": "true" }, level === "error" ? "⛔" : "⚠"),
            el("div", null,
              el("p", { class: "banner__message" },
                el("strong", null, notice.message || (level === "error" ? "An API balance is used up." : "An API balance is running low."))),
              names.length ? el("p", { class: "banner__resources" }, "Affected " + (names.length === 1 ? "resource" : "resources") + ": " + names.join(", ")) : null
            )
          )
        );
        banner.hidden = false;
      },
      function () {
        // members without access to notices simply get no banner; the sections show the errors
        if (generation !== state.generation) return;
        banner.hidden = true;
      }
    );
  }

  // ------------------------------------------------------------------ balances

  function loadBalances(generation) {
    var container = $("balances");
    loading(container, "Loading balances…");
    $("balances-meta").textContent = "";
    return api(teamPath("/balances")).then(
      function (body) {
        if (generation !== state.generation) return;
        var cards = (body && body.balances) || [];
        state.balances = cards;
        $("balances-meta").textContent = body && body.as_of ? "As of " + dateTime(body.as_of) : "";
        if (!cards.length) replace(container, el("p", { class: "empty" }, "This team has no subscriptions yet."));
        else replace(container, cards.map(balanceCard));
        fillResourceChoices();
      },
      function (error) {
        if (generation !== state.generation) return;
        state.balances = [];
        replace(container, errorBox(error, "Balances could not be loaded"));
        fillResourceChoices();
      }
    );
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

    var article = el("article", { class: "card card--" + status, "aria-labelledby": headingId, "data-resource-id": card.resource_id },
      el("header", { class: "card__head" },
        el("div", null,
          el("h3", { id: headingId, class: "card__title" }, card.display_name || card.resource_id),
          el("span", { class: "kind" }, card.kind === "api" ? "API" : "Resource")
        ),
        el("span", { class: "status status--" + status }, STATUS_LABELS[status])
      ),
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
      card.payg ? paygBlock(card.payg, chargedUnit) : null
    );
    // width via CSSOM (the page's CSP forbids inline style attributes being parsed from markup)
    article.querySelector(".meter__fill").style.width = percent + "%";
    return article;
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

  function paygBlock(payg, chargedUnit) {
    return el("div", { class: "payg" },
      el("p", { class: "payg__title" }, "Pay as You Go — current billing cycle"),
      el("p", null, el("span", { class: "payg__cycle" }, date(payg.cycle_start) + " – " + date(payg.cycle_end))),
      el("p", null,
        el("span", { class: "payg__units" }, plural(payg.charged_units || 0, chargedUnit)),
        " · ",
        el("strong", { class: "payg__amount" }, money(payg.amount, payg.currency))
      )
    );
  }

  // ------------------------------------------------------------------ usage

  function initUsageControls() {
    applyRange("30d");
    $("usage-range").addEventListener("change", function (event) {
      if (event.target.value !== "custom") {
        applyRange(event.target.value);
        if (event.target.value.slice(-1) === "m") $("usage-granularity").value = "month";
        else $("usage-granularity").value = "day";
        loadUsage(state.generation);
      }
    });
    ["usage-from", "usage-to"].forEach(function (id) {
      $(id).addEventListener("change", function () { $("usage-range").value = "custom"; });
    });
    ["usage-granularity", "usage-group", "usage-resource"].forEach(function (id) {
      $(id).addEventListener("change", function () { loadUsage(state.generation); });
    });
    $("usage-form").addEventListener("submit", function (event) {
      event.preventDefault();
      loadUsage(state.generation);
    });
    var today = todayUtc();
    $("usage-to").max = isoDate(today);
    $("usage-from").min = isoDate(addMonths(today, -MAX_MONTHS));
  }

  function applyRange(range) {
    var today = todayUtc();
    var from;
    if (range === "7d") from = addDays(today, -6);
    else if (range === "90d") from = addDays(today, -89);
    else if (range === "12m") from = addMonths(today, -12);
    else if (range === "24m") from = addMonths(today, -MAX_MONTHS);
    else from = addDays(today, -29);
    $("usage-from").value = isoDate(from);
    $("usage-to").value = isoDate(today);
  }

  function fillResourceChoices() {
    // usage filter
    var select = $("usage-resource");
    var current = select.value;
    while (select.options.length > 1) select.remove(1);
    state.balances.forEach(function (card) {
      select.appendChild(el("option", { value: card.resource_id }, card.display_name || card.resource_id));
    });
    select.value = current;
    if (select.value !== current) select.value = "";

    // alert form
    var box = $("alert-resources");
    var checked = {};
    Array.prototype.forEach.call(box.querySelectorAll("input[name=resource]"), function (input) { checked[input.value] = input.checked; });
    if (!state.balances.length) {
      replace(box, el("p", { class: "hint" }, "No resources to choose from (balances did not load)."));
      return;
    }
    replace(box, state.balances.map(function (card) {
      return el("label", { class: "check" },
        el("input", { type: "checkbox", name: "resource", value: card.resource_id, checked: !!checked[card.resource_id] }),
        " " + (card.display_name || card.resource_id) + (card.kind === "api" ? " (API)" : "")
      );
    }));
  }

  var usageRequest = 0;
  var USAGE_PAGES = 10; // the report comes a page of series at a time (next_cursor); the chart takes this many

  /** The report's first pages, their series concatenated; next_cursor is the last page's. */
  function usagePages(query, pages, sofar) {
    var cursor = sofar && sofar.next_cursor ? "&cursor=" + encodeURIComponent(sofar.next_cursor) : "";
    return api(teamPath("/usage" + query + cursor)).then(function (page) {
      page = page || {};
      if (sofar) page.series = (sofar.series || []).concat(page.series || []);
      return page.next_cursor && pages > 1 ? usagePages(query, pages - 1, page) : page;
    });
  }

  function loadUsage(generation) {
    var container = $("usage");
    var from = $("usage-from").value;
    var to = $("usage-to").value;
    var granularity = $("usage-granularity").value;
    var group = $("usage-group").value;
    var resource = $("usage-resource").value;
    var request = ++usageRequest;
    loading(container, "Loading usage…");
    $("usage-meta").textContent = "";
    var query = "?from=" + encodeURIComponent(from) + "&to=" + encodeURIComponent(to) +
      "&granularity=" + encodeURIComponent(granularity) + "&group_by=" + encodeURIComponent(group);
    if (resource) query += "&resource_id=" + encodeURIComponent(resource);
    return usagePages(query, USAGE_PAGES).then(
      function (body) {
        if (generation !== state.generation || request !== usageRequest) return;
        $("usage-meta").textContent = (body && body.as_of ? "As of " + dateTime(body.as_of) : "") +
          (body && body.next_cursor ? " · the first " + num((body.series || []).length) + " series are shown" : "");
        renderUsage(container, body || {}, { from: from, to: to, granularity: granularity, group: group, resource: resource });
      },
      function (error) {
        if (generation !== state.generation || request !== usageRequest) return;
        replace(container, errorBox(error, "Usage could not be loaded"));
      }
    );
  }

  function seriesLabel(key, group) {
    key = key || {};
    if (group === "resource" || key.resource_id !== undefined) {
      if (key.resource_id) return resourceName(key.resource_id);
    }
    var value = key.user_id !== undefined ? key.user_id : key.app_id !== undefined ? key.app_id : key.resource_id;
    if (value === null || value === undefined || value === "") {
      return group === "app" ? "(no app)" : group === "user" ? "(no user)" : "(none)";
    }
    return String(value);
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
    var group = body.group_by || asked.group;
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
    // periods: the whole asked range, plus any the API returned outside it (never drop data)
    var periods = periodsBetween(body.from || asked.from, body.to || asked.to, granularity);
    var seen = {};
    periods.forEach(function (p) { seen[p] = true; });
    series.forEach(function (s) {
      Object.keys(s.values).forEach(function (p) { if (!seen[p]) { seen[p] = true; periods.push(p); } });
    });
    periods.sort();

    var grand = series.reduce(function (sum, s) { return sum + s.total; }, 0);
    if (!series.length || grand === 0) {
      replace(container, el("p", { class: "empty" }, "No usage in this period."));
      return;
    }
    var unitNote = asked.resource ? unitOf(asked.resource) : null;
    var figure = el("figure", { class: "chart" },
      usageChart(series, periods, granularity),
      el("figcaption", null,
        legend(series),
        el("p", { class: "chart__caption" },
          "Total: " + (unitNote ? plural(grand, unitNote) : num(grand) + " base units") +
          (asked.resource ? "" : " (quantities are in each resource's base unit)"))
      )
    );
    replace(container, figure, usageTable(series, periods, granularity, group));
  }

  function unitOf(resourceId) {
    for (var i = 0; i < state.balances.length; i++) {
      if (state.balances[i].resource_id === resourceId) return state.balances[i].unit;
    }
    return null;
  }

  function legend(series) {
    return el("ul", { class: "legend" }, series.map(function (s) {
      var swatch = el("span", { class: "legend__swatch", "aria-hidden": "true" });
      swatch.style.background = s.color;
      return el("li", null, swatch, s.label + " (" + num(s.total) + ")");
    }));
  }

  function niceStep(max, ticks) {
    var raw = max / ticks;
    var magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    var residual = raw / magnitude;
    var step = residual > 5 ? 10 : residual > 2 ? 5 : residual > 1 ? 2 : 1;
    return Math.max(1, step * magnitude);
  }

  /** A stacked bar chart in inline SVG: one bar per period, one segment per series. */
  function usageChart(series, periods, granularity) {
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
      "aria-label": "Stacked bar chart of usage per " + granularity + " for " + series.length + " series; the table lists the same numbers",
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
    if (periods.length > 1) {
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

  function usageTable(series, periods, granularity, group) {
    var groupLabel = group === "user" ? "user" : group === "app" ? "app" : "resource";
    var rows = periods.filter(function (p) {
      return series.some(function (s) { return s.values[p]; });
    });
    return el("div", { class: "table-wrap usage__table", tabindex: "0", role: "region", "aria-label": "Usage by " + groupLabel + " table" },
      el("table", { class: "table" },
        el("caption", { class: "visually-hidden" }, "Usage per " + granularity + " by " + groupLabel + " (periods without usage are omitted)"),
        el("thead", null, el("tr", null,
          el("th", { scope: "col" }, granularity === "month" ? "Month" : "Day"),
          series.map(function (s) { return el("th", { scope: "col", class: "num" }, s.label); }),
          series.length > 1 ? el("th", { scope: "col", class: "num" }, "Total") : null
        )),
        el("tbody", null, rows.map(function (p) {
          var total = 0;
          return el("tr", null,
            el("th", { scope: "row" }, periodLabel(p, granularity)),
            series.map(function (s) { var v = s.values[p] || 0; total += v; return el("td", { class: "num" }, num(v)); }),
            series.length > 1 ? el("td", { class: "num" }, num(total)) : null
          );
        })),
        el("tfoot", null, el("tr", null,
          el("th", { scope: "row" }, "Total"),
          series.map(function (s) { return el("td", { class: "num" }, num(s.total)); }),
          series.length > 1 ? el("td", { class: "num" }, num(series.reduce(function (a, s) { return a + s.total; }, 0))) : null
        ))
      )
    );
  }

  // ------------------------------------------------------------------ invoices

  function loadInvoices(generation, cursor) {
    var container = $("invoices");
    if (!cursor) loading(container, "Loading invoices…");
    var query = "?limit=20" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    return api(teamPath("/invoices" + query)).then(
      function (body) {
        if (generation !== state.generation) return;
        var items = (body && body.items) || [];
        var tbody;
        if (cursor) {
          tbody = container.querySelector("tbody");
          var more = container.querySelector(".load-more");
          if (more) more.remove();
        }
        if (!tbody) {
          if (!items.length) {
            replace(container, el("p", { class: "empty" }, "No invoices yet. Invoices appear after a Pay as You Go billing cycle with charged units closes."));
            return;
          }
          tbody = el("tbody");
          replace(container, el("div", { class: "table-wrap" }, el("table", { class: "table invoices" },
            el("caption", { class: "visually-hidden" }, "Invoices, newest first"),
            el("thead", null, el("tr", null,
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
          container.appendChild(el("button", {
            type: "button", class: "button button--ghost load-more",
            onclick: function () { loadInvoices(generation, body.next_cursor); },
          }, "Load more invoices"));
        }
      },
      function (error) {
        if (generation !== state.generation) return;
        if (cursor) container.appendChild(errorBox(error, "More invoices could not be loaded"));
        else replace(container, errorBox(error, "Invoices could not be loaded"));
      }
    );
  }

  function invoiceRow(invoice) {
    var status = invoice.status === "paid" ? "paid" : invoice.status === "payment_failed" ? "failed" : "other";
    var statusText = invoice.status === "paid" ? "Paid" : invoice.status === "payment_failed" ? "Payment failed" : String(invoice.status || "–");
    var period = date(invoice.period_start) + " – " + date(invoice.period_end);
    return el("tr", { "data-invoice-id": invoice.invoice_id },
      el("td", null, period, invoice.issued_at ? el("span", { class: "sub" }, "Issued " + date(invoice.issued_at)) : null),
      el("td", { class: "num" }, money(invoice.total, invoice.currency)),
      el("td", null, el("span", { class: "status status--" + (status === "paid" ? "ok" : status === "failed" ? "exhausted" : "low") }, statusText)),
      el("td", { class: "actions" }, el("button", {
        type: "button", class: "button button--small invoice-open", "aria-label": "View invoice for " + period,
        onclick: function () { openInvoice(invoice, period); },
      }, "View"))
    );
  }

  function openInvoice(invoice, period) {
    var dialog = $("invoice-dialog");
    var view = $("invoice-view");
    $("invoice-dialog-title").textContent = "Invoice " + period;
    loading(view, "Loading invoice…");
    if (typeof dialog.showModal === "function") {
      if (!dialog.open) dialog.showModal();
    } else {
      dialog.setAttribute("open", "");
    }
    api(teamPath("/invoices/" + encodeURIComponent(invoice.invoice_id)), { accept: "text/html" }).then(
      function (html) {
        if (typeof html !== "string") html = "<pre>" + escapeForSrcdoc(JSON.stringify(html, null, 2)) + "</pre>";
        // sandbox="" : no scripts, no forms, no navigation of this page; srcdoc is a property, not markup
        var frame = el("iframe", { class: "invoice-frame", sandbox: "", title: "Invoice " + period, referrerpolicy: "no-referrer" });
        frame.srcdoc = html;
        replace(view, frame);
      },
      function (error) {
        replace(view, errorBox(error, "The invoice could not be shown"));
      }
    );
  }

  function escapeForSrcdoc(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function closeInvoice() {
    var dialog = $("invoice-dialog");
    if (typeof dialog.close === "function" && dialog.open) dialog.close();
    else dialog.removeAttribute("open");
    replace($("invoice-view"));
  }

  // ------------------------------------------------------------------ alerts

  function loadAlerts(generation) {
    var container = $("alerts");
    loading(container, "Loading alerts…");
    return api(teamPath("/alerts")).then(
      function (body) {
        if (generation !== state.generation) return;
        var items = (body && body.items) || [];
        if (!items.length) {
          replace(container, el("p", { class: "empty" }, "No saved alerts."));
          return;
        }
        replace(container, el("ul", { class: "alert-list" }, items.map(alertItem)));
      },
      function (error) {
        if (generation !== state.generation) return;
        replace(container, errorBox(error, "Alerts could not be loaded"));
      }
    );
  }

  function alertItem(alert) {
    var windows = (alert.windows_days || []).slice().sort(function (a, b) { return b - a; });
    var message = el("div", { class: "alert-item__message", role: "status", "aria-live": "polite" });
    var item = el("li", { class: "alert-item", "data-alert-id": alert.alert_id },
      el("div", { class: "alert-item__main" },
        el("p", { class: "alert-item__name" }, alert.name || "(unnamed)"),
        el("p", { class: "alert-item__detail" }, "Notify when projected to run out within " + windows.join(" and ") + " days"),
        el("p", { class: "alert-item__detail" }, "Resources: " + (alert.resource_ids || []).map(resourceName).join(", ")),
        el("p", { class: "alert-item__detail" }, "Recipients: " + (alert.recipient_user_ids || []).join(", ")),
        alert.created_at ? el("p", { class: "alert-item__meta" }, "Created " + dateTime(alert.created_at) + (alert.created_by ? " by " + alert.created_by : "")) : null,
        message
      )
    );
    var button = el("button", {
      type: "button", class: "button button--danger button--small alert-delete", "aria-label": "Delete alert " + (alert.name || ""),
    }, "Delete");
    button.addEventListener("click", function () {
      button.disabled = true;
      button.textContent = "Deleting…";
      api(teamPath("/alerts/" + encodeURIComponent(alert.alert_id)), { method: "DELETE" }).then(
        function () { loadAlerts(state.generation); },
        function (error) {
          button.disabled = false;
          button.textContent = "Delete";
          replace(message, errorBox(error, "Not deleted"));
        }
      );
    });
    item.appendChild(button);
    return item;
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
    var others = $("alert-recipients-other").value.split(/[\s,;]+/).filter(Boolean);
    var recipients = checkedValues(form, "recipient");
    others.forEach(function (id) { if (recipients.indexOf(id) < 0) recipients.push(id); });
    var payload = {
      name: $("alert-name").value.trim(),
      windows_days: checkedValues(form, "window").map(Number),
      resource_ids: checkedValues(form, "resource"),
      recipient_user_ids: recipients,
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
    api(teamPath("/alerts"), { method: "POST", body: payload }).then(
      function (created) {
        button.disabled = false;
        replace(message, el("p", { class: "success" }, "Alert “" + ((created && created.name) || payload.name) + "” created."));
        $("alert-name").value = "";
        loadAlerts(generation);
      },
      function (error) {
        button.disabled = false;
        if (error.status === 409) {
          replace(message, errorBox(error, "Not created: an alert with this configuration already exists", true));
        } else {
          replace(message, errorBox(error, "Not created"));
        }
      }
    );
  }

  // ------------------------------------------------------------------ wiring

  function readHash() {
    var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    var team = params.get("team");
    if (team) state.team = team;
  }

  function writeHash() {
    var hash = "#team=" + encodeURIComponent(state.team);
    if (window.location.hash !== hash) history.replaceState(null, "", hash);
  }

  function reloadAll() {
    state.generation += 1;
    var generation = state.generation;
    writeHash();
    document.title = "Resource and API Usage · " + state.team;
    replace($("alert-form-message"));
    // balances first: their names label the banner, the chart and the alert form
    var balances = loadBalances(generation);
    loadInvoices(generation);
    balances.then(function () {
      if (generation !== state.generation) return;
      loadBanner(generation);
      loadUsage(generation);
      loadAlerts(generation);
    });
  }

  function start() {
    readHash();
    $("team-input").value = state.team;
    initUsageControls();
    $("context-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var team = $("team-input").value.trim();
      if (!team) {
        $("team-input").focus();
        return;
      }
      state.team = team;
      reloadAll();
    });
    $("team-input").addEventListener("change", function () {
      var team = $("team-input").value.trim();
      if (team && team !== state.team) {
        state.team = team;
        reloadAll();
      }
    });
    $("alert-form").addEventListener("submit", submitAlert);
    $("invoice-close").addEventListener("click", closeInvoice);
    $("invoice-dialog").addEventListener("close", function () { replace($("invoice-view")); });
    window.addEventListener("hashchange", function () {
      var before = state.team;
      readHash();
      if (state.team !== before) {
        $("team-input").value = state.team;
        reloadAll();
      }
    });
    reloadAll();
  }

  function signedIn() {
    Auth.ready().then(function (user) {
      state.user = user.sub;
      start();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", signedIn);
  else signedIn();
})();
