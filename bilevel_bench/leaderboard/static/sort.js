/* Sortable tables: click a column header to sort by it (again to reverse).
   Cells carry their sort key in data-sort; numeric columns have class "num" on the header.
   Missing values (empty key) always sort last. No dependencies; works from file://. */
(function () {
  "use strict";
  function sortKey(row, index) {
    var cell = row.cells[index];
    return cell ? cell.getAttribute("data-sort") || "" : "";
  }
  function makeSortable(table) {
    var headers = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(headers, function (th, index) {
      var button = th.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        var numeric = th.classList.contains("num");
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var a = sortKey(r1, index), b = sortKey(r2, index);
          if (a === "" || b === "") { return (a === "" ? 1 : 0) - (b === "" ? 1 : 0); }
          var c = numeric ? parseFloat(a) - parseFloat(b) : a.localeCompare(b);
          return ascending ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);
})();
