// Package controllers holds the reconcilers of netpol2authz. They gather a
// snapshot from the informer cache, hand it to the pure engine in
// internal/translate, apply the result and write status; nothing more.
package controllers
