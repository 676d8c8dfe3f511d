/* wsi-heatmap slide page: the slide in OpenSeadragon, the heatmap as a second image
 * placed in level-0 pixels, the tumour polygons as SVG, a cursor read-out and a scale
 * bar. Everything is fetched from this app (URLs come from #page-data). */
(function () {
  "use strict";

  var page = JSON.parse(document.getElementById("page-data").textContent);
  var SVG_NS = "http://www.w3.org/2000/svg"; // an XML namespace name, never fetched
  var viewer = OpenSeadragon({
    id: "osd",
    prefixUrl: page.osd_images,
    tileSources: page.dzi_url,
    showNavigator: true,
    navigatorPosition: "TOP_RIGHT",
    showRotationControl: false,
    maxZoomPixelRatio: 4,
    visibilityRatio: 0.5,
    crossOriginPolicy: false,
    gestureSettingsMouse: { clickToZoom: false },
  });

  var slideItem = null;
  var heatmap = null; // geometry from /api/slides/<stem>/heatmap
  var heatmapItem = null;
  var heatmapOn = true;
  var opacity = 0.5;
  var minProbability = 0;
  var onViewportChange = [];

  function $(id) { return document.getElementById(id); }
  function show(id) { $(id).hidden = false; }
  function getJson(url) {
    return fetch(url).then(function (r) { return r.ok ? r.json() : null; });
  }

  /* level-0 pixels -> viewer-element pixels: origin and scale (no rotation, no flip) */
  function screenTransform() {
    var p0 = slideItem.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
    var p1 = slideItem.imageToViewerElementCoordinates(new OpenSeadragon.Point(10000, 0));
    return { x: p0.x, y: p0.y, scale: (p1.x - p0.x) / 10000 };
  }

  viewer.addOnceHandler("open", function () {
    slideItem = viewer.world.getItemAt(0);
    viewer.addHandler("update-viewport", function () {
      var t = screenTransform();
      onViewportChange.forEach(function (f) { f(t); });
    });
    loadHeatmap();
    loadRegions();
    trackCursor();
    if (page.mpp) { onViewportChange.push(updateScalebar); show("scalebar"); }
    goToHash();
    viewer.addHandler("animation-finish", writeHash);
  });

  /* ---- the location as #x=..&y=..&w=.. (level-0 centre and visible width) -------- */
  function goToHash() {
    var h = {};
    location.hash.slice(1).split("&").forEach(function (pair) {
      var kv = pair.split("=");
      if (kv.length === 2) h[kv[0]] = parseFloat(kv[1]);
    });
    if (!(isFinite(h.x) && isFinite(h.y) && h.w > 0)) return;
    var rect = new OpenSeadragon.Rect(h.x - h.w / 2, h.y - h.w / 2, h.w, h.w);
    viewer.viewport.fitBounds(slideItem.imageToViewportRectangle(rect), true);
  }

  function writeHash() {
    var r = slideItem.viewportToImageRectangle(viewer.viewport.getBounds(true));
    var hash = "#x=" + Math.round(r.x + r.width / 2) + "&y=" + Math.round(r.y + r.height / 2) +
      "&w=" + Math.round(r.width);
    history.replaceState(null, "", hash);
  }

  /* ---- heatmap ---------------------------------------------------------------- */
  function loadHeatmap() {
    getJson(page.heatmap_url).then(function (geometry) {
      if (!geometry) { show("heatmap-missing"); return; }
      heatmap = geometry;
      show("heatmap-controls");
      addHeatmapImage();
    });
    $("heatmap-on").addEventListener("change", function (e) {
      heatmapOn = e.target.checked;
      if (heatmapItem) heatmapItem.setOpacity(heatmapOn ? opacity : 0);
    });
    $("heatmap-opacity").addEventListener("input", function (e) {
      opacity = e.target.value / 100;
      $("heatmap-opacity-value").textContent = e.target.value + "%";
      if (heatmapItem && heatmapOn) heatmapItem.setOpacity(opacity);
    });
    var timer = null;
    $("heatmap-min").addEventListener("input", function (e) {
      minProbability = e.target.value / 100;
      $("heatmap-min-value").textContent = minProbability.toFixed(2);
      clearTimeout(timer);
      timer = setTimeout(addHeatmapImage, 150);
    });
  }

  function addHeatmapImage() {
    var width = slideItem.getContentSize().x; // viewport units are slide widths
    var previous = heatmapItem;
    viewer.addTiledImage({
      tileSource: {
        type: "image",
        url: heatmap.image_url + "?min_probability=" + minProbability.toFixed(2),
        buildPyramid: false,
      },
      x: heatmap.origin_l0_px[0] / width,
      y: heatmap.origin_l0_px[1] / width,
      width: heatmap.size_l0_px[0] / width,
      opacity: heatmapOn ? opacity : 0,
      success: function (event) {
        heatmapItem = event.item;
        if (previous) viewer.world.removeItem(previous);
      },
    });
  }

  /* ---- tumour regions ----------------------------------------------------------- */
  function ringsOf(geometry) {
    if (!geometry) return [];
    if (geometry.type === "Polygon") return [geometry.coordinates];
    if (geometry.type === "MultiPolygon") return geometry.coordinates;
    return [];
  }

  function pathData(polygons) {
    return polygons.map(function (rings) {
      return rings.map(function (ring) {
        return "M" + ring.map(function (p) { return p[0] + " " + p[1]; }).join("L") + "Z";
      }).join("");
    }).join("");
  }

  function bounds(polygons) {
    var b = [Infinity, Infinity, -Infinity, -Infinity];
    polygons.forEach(function (rings) {
      rings[0].forEach(function (p) {
        b = [Math.min(b[0], p[0]), Math.min(b[1], p[1]), Math.max(b[2], p[0]), Math.max(b[3], p[1])];
      });
    });
    return b;
  }

  function describe(feature, index) {
    var props = feature.properties || {};
    var fields = Object.assign({}, props, props.measurements && !Array.isArray(props.measurements) ? props.measurements : {});
    if (Array.isArray(props.measurements)) {
      props.measurements.forEach(function (m) { fields[m.name] = m.value; });
    }
    var parts = [];
    Object.keys(fields).forEach(function (key) {
      var value = fields[key];
      if (typeof value !== "number" || parts.length >= 3) return;
      if (/area/i.test(key) && /um2|µm/i.test(key)) parts.push((value / 1e6).toFixed(3) + " mm²");
      else if (/area/i.test(key)) parts.push(value.toPrecision(3) + " " + key.replace(/^.*area_?/i, ""));
      else if (/prob/i.test(key)) parts.push(key.replace(/_/g, " ") + " " + value.toFixed(2));
    });
    return "Region " + (index + 1) + (parts.length ? ": " + parts.join(", ") : "");
  }

  function loadRegions() {
    getJson(page.regions_url).then(function (collection) {
      if (!collection) { show("regions-missing"); return; }
      show("regions-controls");
      var svg = document.createElementNS(SVG_NS, "svg");
      svg.setAttribute("class", "regions-layer");
      var group = document.createElementNS(SVG_NS, "g");
      svg.appendChild(group);
      viewer.canvas.appendChild(svg);
      var list = $("regions-list");
      collection.features.forEach(function (feature, index) {
        var polygons = ringsOf(feature.geometry);
        if (!polygons.length) return;
        var path = document.createElementNS(SVG_NS, "path");
        path.setAttribute("d", pathData(polygons));
        path.setAttribute("fill-rule", "evenodd");
        group.appendChild(path);
        var b = bounds(polygons);
        var item = document.createElement("li");
        item.textContent = describe(feature, index);
        item.title = "zoom to this region";
        item.addEventListener("click", function () {
          var pad = Math.max(b[2] - b[0], b[3] - b[1]) * 0.25 + 200;
          var rect = new OpenSeadragon.Rect(b[0] - pad, b[1] - pad, b[2] - b[0] + 2 * pad, b[3] - b[1] + 2 * pad);
          viewer.viewport.fitBoundsWithConstraints(slideItem.imageToViewportRectangle(rect));
        });
        list.appendChild(item);
      });
      if (list.children.length) show("regions-section");
      function place(t) {
        group.setAttribute("transform", "translate(" + t.x + " " + t.y + ") scale(" + t.scale + ")");
      }
      onViewportChange.push(place);
      place(screenTransform());
      $("regions-on").addEventListener("change", function (e) {
        svg.style.display = e.target.checked ? "" : "none";
      });
    });
  }

  /* ---- cursor read-out ---------------------------------------------------------- */
  function describePoint(xy, value) {
    var text = "x " + Math.floor(xy[0]) + ", y " + Math.floor(xy[1]) + " px";
    if (page.mpp) {
      text += " (" + (xy[0] * page.mpp / 1000).toFixed(2) + ", " +
        (xy[1] * page.mpp / 1000).toFixed(2) + " mm)";
    }
    if (value && value.row !== null) {
      text += "\ncell row " + value.row + ", col " + value.col + ": " +
        (value.probability === null ? "no tissue patch" : "p = " + value.probability.toFixed(3));
    }
    return text;
  }

  function trackCursor() {
    var latest = null; // the point under the cursor; answers for older points are dropped
    var next = null;
    var pending = false;
    function pump() {
      if (!next || pending) return;
      var xy = next;
      next = null;
      pending = true;
      getJson(page.value_url + "?x=" + xy[0].toFixed(1) + "&y=" + xy[1].toFixed(1))
        .then(function (value) {
          if (xy === latest) $("cursor").textContent = describePoint(xy, value);
        })
        .catch(function () {})
        .then(function () { pending = false; pump(); });
    }
    new OpenSeadragon.MouseTracker({
      element: viewer.canvas,
      moveHandler: function (event) {
        var point = slideItem.viewportToImageCoordinates(viewer.viewport.pointFromPixel(event.position));
        var size = slideItem.getContentSize();
        if (point.x < 0 || point.y < 0 || point.x >= size.x || point.y >= size.y) {
          latest = next = null;
          $("cursor").textContent = "Outside the slide.";
          return;
        }
        latest = [point.x, point.y];
        $("cursor").textContent = describePoint(latest, null);
        if (heatmap) { next = latest; pump(); }
      },
    });
  }

  /* ---- scale bar ---------------------------------------------------------------- */
  function updateScalebar(t) {
    var umPerScreenPx = page.mpp / t.scale;
    var target = 120 * umPerScreenPx;
    var power = Math.pow(10, Math.floor(Math.log10(target)));
    var length = [5, 2, 1].map(function (m) { return m * power; })
      .find(function (v) { return v <= target; });
    var bar = $("scalebar");
    bar.firstElementChild.style.width = (length / umPerScreenPx).toFixed(1) + "px";
    bar.lastElementChild.textContent = length >= 1000 ? length / 1000 + " mm" : length + " µm";
  }
})();
