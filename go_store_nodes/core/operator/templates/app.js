'use strict';
(function () {
  const svg = document.getElementById('map');
  if (!svg) { return; }
  const NS = 'http://www.w3.org/2000/svg';
  const depth = svg.viewBox.baseVal.height;
  const period = Number(svg.dataset.periodMs) || 500;
  const layer = document.getElementById('tracks');
  const colours = ['#2d6cdf', '#d9480f', '#2b8a3e', '#ae3ec9', '#e67700', '#0b7285'];
  function colour(track) {
    if (track.role === 'associate') { return '#555'; }
    return colours[track.track_id % colours.length];
  }
  function money(cents) { return (cents / 100).toFixed(2); }
  function draw(live) {
    while (layer.firstChild) { layer.removeChild(layer.firstChild); }
    for (const track of live.tracks) {
      const group = document.createElementNS(NS, 'g');
      group.setAttribute('class', 'track');
      group.setAttribute('id', 'track-' + track.track_id);
      const trail = document.createElementNS(NS, 'polyline');
      trail.setAttribute('class', 'trail');
      trail.setAttribute('stroke', colour(track));
      trail.setAttribute('points', track.trail.map(p => p[0] + ',' + (depth - p[1])).join(' '));
      group.appendChild(trail);
      const dot = document.createElementNS(NS, 'circle');
      dot.setAttribute('cx', track.x);
      dot.setAttribute('cy', depth - track.y);
      dot.setAttribute('r', 0.22);
      dot.setAttribute('fill', colour(track));
      dot.setAttribute('fill-opacity', track.tangled ? 0.5 : 0.9);
      group.appendChild(dot);
      const label = document.createElementNS(NS, 'text');
      label.setAttribute('class', 'label');
      label.setAttribute('x', track.x + 0.25);
      label.setAttribute('y', depth - track.y - 0.2);
      label.textContent = '#' + (track.track_id % 10000) + (track.visit_id ? ' ' + track.visit_id.substring(0, 8) : '');
      group.appendChild(label);
      layer.appendChild(group);
    }
    document.getElementById('track-count').textContent = live.tracks.length;
    document.getElementById('live-stamp').textContent =
      live.stamp_ns ? new Date(live.stamp_ns / 1e6).toISOString().substring(11, 21) : '-';
  }
  function drawVisits(visits, carts) {
    const box = document.getElementById('visits');
    box.textContent = '';
    if (!visits.length) { box.textContent = 'No open visit.'; return; }
    const table = document.createElement('table');
    const head = table.insertRow();
    for (const name of ['visit', 'account', 'people', 'cart']) {
      const th = document.createElement('th'); th.textContent = name; head.appendChild(th);
    }
    for (const visit of visits) {
      const row = table.insertRow();
      row.setAttribute('id', 'visit-' + visit.visit_id);
      const link = document.createElement('a');
      link.href = '/visits/' + encodeURIComponent(visit.visit_id);
      link.textContent = visit.visit_id.substring(0, 8);
      link.title = visit.visit_id;
      row.insertCell().appendChild(link);
      row.insertCell().textContent = visit.account_ref;
      row.insertCell().textContent = visit.track_ids.map(t => '#' + (t % 10000)).join(' ');
      const cart = carts[visit.visit_id];
      row.insertCell().textContent = cart === undefined ? '...' : cart.found
        ? cart.lines.map(l => l.quantity + ' x ' + l.name).join(', ') + (cart.lines.length ? '; ' : '')
          + money(cart.total_cents) + ' ' + cart.currency
          + (cart.open_reviews ? ' (' + cart.open_reviews + ' to review)' : '')
        : cart.message;
    }
    box.appendChild(table);
  }
  let carts = {};
  let visits = [];
  async function poll() {
    try {
      const response = await fetch('/api/live', {credentials: 'same-origin'});
      if (response.status === 401) { window.location = '/login'; return; }
      const live = await response.json();
      draw(live);
      const known = visits.map(v => v.visit_id).join();
      visits = live.visits;
      drawVisits(visits, carts);
      if (visits.map(v => v.visit_id).join() !== known) { pollCarts(false); }
    } catch (error) { /* the next poll tries again */ }
    setTimeout(poll, period);
  }
  async function pollCarts(again = true) {
    try {
      const response = await fetch('/api/carts', {credentials: 'same-origin'});
      if (response.ok) { carts = await response.json(); drawVisits(visits, carts); }
    } catch (error) { /* the next poll tries again */ }
    if (again) { setTimeout(pollCarts, 3000); }
  }
  poll();
  pollCarts();
})();
