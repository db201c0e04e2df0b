package checks

import (
	"fmt"

	"github.com/directorlb/director/config"
)

// nativeSpec maps what the smtp, banner and file checks, the http digest
// and exec's weight_from_exit take from a check (the rest of FromConfig
// is in spec.go).
func nativeSpec(p *ProbeSpec, c config.Check) {
	switch c.Type {
	case config.CheckSMTP:
		p.SMTP = SMTP{HeloName: c.HeloName}
	case config.CheckBanner:
		p.Banner = BannerOptions{Protocol: c.BannerProtocol}
		if c.User != "" {
			// Without a user there is no login: an inherited password
			// means nothing, and must not make a probe of its own.
			p.Banner.Login = SQLOptions{User: c.User, PasswordFile: c.PasswordFile, PasswordEnv: c.PasswordEnv}
		}
	case config.CheckFile:
		p.File = FileCheck{Path: c.File}
	case config.CheckHTTP, config.CheckHTTPS:
		p.HTTP.Digest = c.Digest
	case config.CheckExec:
		p.WeightFromExit = c.WeightFromExit
	}
}

// nativeProber builds the prober of an smtp, banner or file check.
func nativeProber(p ProbeSpec) Prober {
	switch p.Type {
	case config.CheckSMTP:
		// The host name is looked up once per prober, not per probe.
		return SMTP{HeloName: helo(p.SMTP.HeloName)}
	case config.CheckBanner:
		o := p.Banner
		if o.Login.User != "" && !o.Login.Password.IsSet() {
			// As for mysql: LoadSpecs has read the password; a spec
			// made otherwise reads it here, once per prober.
			if err := o.Login.LoadPassword(); err != nil {
				return broken{fmt.Errorf("banner check: %w", err)}
			}
		}
		return Banner{o}
	case config.CheckFile:
		return p.File
	}
	return broken{fmt.Errorf("check type %q is not implemented", p.Type)}
}

// loadBanner reads a banner check's password file as mysql's is read:
// once per load, each file once.
func (l *fileLoader) loadBanner(p *ProbeSpec, bad func(string, error) *config.Error) *config.Error {
	o := &p.Banner.Login
	if p.Type != config.CheckBanner || o.User == "" {
		return nil
	}
	if f := o.PasswordFile; f != "" {
		if v, ok := l.passwords[f]; ok {
			o.Password = v
		} else if !l.failed[f] {
			if err := o.LoadPassword(); err != nil {
				l.failed[f] = true
				return bad("password_file", err)
			}
			l.passwords[f] = o.Password
		}
	} else if o.PasswordEnv != "" {
		if err := o.LoadPassword(); err != nil {
			return bad("password_env", err)
		}
	}
	return nil
}
