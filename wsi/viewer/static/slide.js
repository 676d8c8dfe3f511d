/* wsi-heatmap slide page: the slide in OpenSeadragon, the heatmap as a second image
 * placed in level-0 pixels, the tumour polygons and the ground truth as SVG (hover or
 * click an outline for its numbers), a cursor read-out, a scale bar with the zoom's
 * objective equivalent. Everything is fetched from this app (URLs come from
 * #page-data). The canvas drawer is forced: OpenSeadragon's WebGL drawer lightens
 * the slide under fully transparent heatmap pixels (premultiplied alpha). */
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
    drawer: "canvas",
    gestureSettingsMouse: { clickToZoom: false },
  });
  window.wsiViewer = viewer; // for the browser test and the console

  var slideItem = null;
  var heatmap = null; // geometry from /api/slides/<stem>/heatmap
  var heatmapItem = null;
  var heatmapOn = true;
  var opacity = null; // both from the sliders, which the server starts at the defaults
  var minProbability = null;
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
    listLesions();
    if (page.truth_url) loadTruth();
    trackCursor();
    if (page.mpp) { onViewportChange.push(updateScalebar); show("scalebar"); }
    goToHash();
    viewer.addHandler("animation-finish", writeHash);
    window.addEventListener("hashchange", goToHash);
  });

  /* ---- the location as #x=..&y=..&w=.. (level-0 centre and visible width) -------- */
  function goToHash() {
    var h = {};
    location.hash.slice(1).split("&").forEach(function (pair) {
      var kv = pair.split("=");
      if (kv.length === 2) h[kv[0]] = parseFloat(kv[1]);
    });
    if (!(isFinite(h.x) && isFinite(h.y) && h.w > 0)) return;
    if (location.hash === lastHash) return; // our own writeHash
    var rect = new OpenSeadragon.Rect(h.x - h.w / 2, h.y - h.w / 2, h.w, h.w);
    viewer.viewport.fitBounds(slideItem.imageToViewportRectangle(rect), true);
  }

  function writeHash() {
    var r = slideItem.viewportToImageRectangle(viewer.viewport.getBounds(true));
    var hash = "#x=" + Math.round(r.x + r.width / 2) + "&y=" + Math.round(r.y + r.height / 2) +
      "&w=" + Math.round(r.width);
    lastHash = hash;
    history.replaceState(null, "", hash);
  }
  var lastHash = null;

  /* ---- heatmap ---------------------------------------------------------------- */
  function loadHeatmap() {
    opacity = $("heatmap-opacity").value / 100;
    minProbability = $("heatmap-min").value / 100;
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
      $("colorbar-tint").style.opacity = opacity;
    });
    var timer = null;
    $("heatmap-min").addEventListener("input", function (e) {
      minProbability = e.target.value / 100;
      $("heatmap-min-value").textContent = minProbability.toFixed(2);
      $("colorbar-hidden").style.width = e.target.value + "%";
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
    // Our regions are named with their size class and longest diameter
    // ("Tumor 1 (micro, 0.43 mm)"); other files get a number.
    var name = typeof props.name === "string" && props.name ? props.name : "Region " + (index + 1);
    return name + (parts.length ? ": " + parts.join(", ") : "");
  }

  function zoomTo(b) {
    var pad = Math.max(b[2] - b[0], b[3] - b[1]) * 0.25 + 200;
    var rect = new OpenSeadragon.Rect(b[0] - pad, b[1] - pad, b[2] - b[0] + 2 * pad, b[3] - b[1] + 2 * pad);
    viewer.viewport.fitBoundsWithConstraints(slideItem.imageToViewportRectangle(rect));
  }
  function areaText(b, feature) {
    var props = feature.properties || {};
    if (props.area_l0_px2 && page.mpp) {
      return (props.area_l0_px2 * page.mpp * page.mpp / 1e6).toFixed(3) + " mm²";
    }
    return "";
  }
  var selectedPath = null;
  function select(path, text, sticky) {
    if (sticky) {
      if (selectedPath) selectedPath.classList.remove("selected");
      selectedPath = path;
      path.classList.add("selected");
    }
    $("selected").textContent = text;
    $("selected").classList.remove("muted");
  }
  /* one SVG layer per collection, kept on the slide as it moves; returns the <svg> */
  function outlineLayer(collection, kind, label) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "regions-layer " + kind + "-layer");
    var group = document.createElementNS(SVG_NS, "g");
    svg.appendChild(group);
    viewer.canvas.appendChild(svg);
    var paths = [];
    collection.features.forEach(function (feature, index) {
      var polygons = ringsOf(feature.geometry);
      if (!polygons.length) return;
      var path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", pathData(polygons));
      path.setAttribute("fill-rule", "evenodd");
      path.setAttribute("class", kind);
      var b = bounds(polygons);
      var text = label(feature, index, b);
      var title = document.createElementNS(SVG_NS, "title");
      title.textContent = text;
      path.appendChild(title);
      path.addEventListener("mouseenter", function () { if (!selectedPath) select(path, text, false); });
      path.addEventListener("click", function () { select(path, text, true); });
      group.appendChild(path);
      paths.push({ path: path, bounds: b, text: text });
    });
    function place(t) {
      group.setAttribute("transform", "translate(" + t.x + " " + t.y + ") scale(" + t.scale + ")");
    }
    onViewportChange.push(place);
    place(screenTransform());
    return { svg: svg, paths: paths };
  }
  function loadRegions() {
    getJson(page.regions_url).then(function (collection) {
      if (!collection) { show("regions-missing"); return; }
      show("regions-controls");
      var layer = outlineLayer(collection, "prediction", describe);
      var list = $("regions-list");
      layer.paths.forEach(function (p) {
        var item = document.createElement("li");
        item.textContent = p.text;
        item.title = "zoom to this region";
        item.addEventListener("click", function () { zoomTo(p.bounds); select(p.path, p.text, true); });
        list.appendChild(item);
      });
      if (list.children.length) show("regions-section");
      $("regions-on").addEventListener("change", function (e) {
        layer.svg.style.display = e.target.checked ? "" : "none";
      });
    });
  }
  /* the staging view's lesions (summary.json), listed by the page: click to zoom */
  function listLesions() {
    document.querySelectorAll(".lesion-item").forEach(function (item) {
      item.addEventListener("click", function () {
        var x = parseFloat(item.dataset.x), y = parseFloat(item.dataset.y);
        var r = parseFloat(item.dataset.diameterUm) / 2 / (page.mpp || 0.25);
        zoomTo([x - r, y - r, x + r, y + r]);
      });
    });
  }
  function loadTruth() {
    fetch(page.truth_url).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (answer) {
      if (!answer.ok) {
        $("truth-error").textContent = "Ground truth not shown: " + (answer.body.error || "unreadable");
        show("truth-error");
        return;
      }
      var layer = outlineLayer(answer.body, "truth", function (feature, index, b) {
        var area = areaText(b, feature);
        return "Ground truth " + (index + 1) + (area ? ": " + area : "") + " (" + answer.body.source + ")";
      });
      document.body.dataset.truthOutlines = String(layer.paths.length);
      $("truth-on").addEventListener("change", function (e) {
        layer.svg.style.display = e.target.checked ? "" : "none";
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
    bar.children[1].textContent = length >= 1000 ? length / 1000 + " mm" : length + " µm";
    // 10x objective ~ 1 µm per screen pixel, 20x ~ 0.5, 40x ~ 0.25 (a display convention)
    var magnification = 10 / umPerScreenPx;
    $("magnification").textContent = "≈ " + (magnification >= 10 ? magnification.toFixed(0) :
      magnification.toPrecision(2)) + "x";
  }
})();
