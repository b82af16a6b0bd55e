// Package web is hasvc's console: plain HTML, CSS and JavaScript with no
// build step and nothing fetched from elsewhere, embedded in the binary
// and served at /ui/. Everything it does goes through the public HTTP
// API with the token a user pastes, which stays in the browser's
// session storage.
package web

import "embed"

// Files holds the console, at its root: index.html, console.css,
// console.js.
//
//go:embed index.html console.css console.js
var Files embed.FS
