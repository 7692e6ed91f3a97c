// yoda-harness report: sort a table by clicking its headers, filter the per-sentence table.
// Inline and self-contained (the page's CSP allows this exact script and nothing else).
(function () {
  "use strict";

  // ---------------------------------------------------------------- sorting
  // A header <th data-type="number|text"> holds a <button>. Number columns compare the cells'
  // data-sort values (empty = no value, always last); text columns compare the cells' text.
  function cellKey(row, column, type) {
    var cell = row.cells[column];
    if (!cell) return type === "number" ? NaN : "";
    if (type === "number") {
      var raw = cell.getAttribute("data-sort");
      return raw === null || raw === "" ? NaN : parseFloat(raw);
    }
    var text = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
    return text.trim().toLowerCase();
  }

  function compare(a, b, type, direction) {
    if (type === "number") {
      var aMissing = isNaN(a), bMissing = isNaN(b);
      if (aMissing || bMissing) return aMissing === bMissing ? 0 : aMissing ? 1 : -1;
      return direction * (a - b);
    }
    if (a === b) return 0;
    if (a === "") return 1;
    if (b === "") return -1;
    return direction * (a < b ? -1 : 1);
  }

  function sortTable(table, header) {
    var headers = table.tHead.rows[0].cells;
    var column = Array.prototype.indexOf.call(headers, header);
    var type = header.getAttribute("data-type") || "text";
    var direction = header.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, position) {
      return { row: row, key: cellKey(row, column, type), position: position };
    });
    rows.sort(function (a, b) {
      return compare(a.key, b.key, type, direction) || a.position - b.position;  // stable
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
    Array.prototype.forEach.call(headers, function (cell) {
      if (cell.hasAttribute("data-type")) cell.setAttribute("aria-sort", "none");
    });
    header.setAttribute("aria-sort", direction === 1 ? "ascending" : "descending");
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.querySelectorAll("thead th[data-type]"), function (header) {
      var button = header.querySelector("button");
      (button || header).addEventListener("click", function () { sortTable(table, header); });
    });
  });

  // ---------------------------------------------------------------- filtering
  // <div class="filters" data-table="ID"> holds a search box (every word must occur in the row's
  // text) and a "worst only" checkbox (rows with class "worst").
  Array.prototype.forEach.call(document.querySelectorAll(".filters[data-table]"), function (controls) {
    var table = document.getElementById(controls.getAttribute("data-table"));
    if (!table) return;
    var search = controls.querySelector("input[type=search]");
    var worstOnly = controls.querySelector("input[type=checkbox]");
    var counter = controls.querySelector(".count");
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });

    function apply() {
      var words = (search ? search.value : "").toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      rows.forEach(function (row, i) {
        var visible = (!worstOnly || !worstOnly.checked || row.classList.contains("worst")) &&
          words.every(function (word) { return texts[i].indexOf(word) !== -1; });
        row.hidden = !visible;
        if (visible) shown += 1;
      });
      if (counter) counter.textContent = shown + " of " + rows.length + " sentences shown";
    }

    if (search) search.addEventListener("input", apply);
    if (worstOnly) worstOnly.addEventListener("change", apply);
    apply();
  });
})();
