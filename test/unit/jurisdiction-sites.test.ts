import { describe, expect, it } from 'vitest';
import ch from '../../jurisdictions/ch.json';
import eu from '../../jurisdictions/eu.json';
import uk from '../../jurisdictions/uk.json';
import us from '../../jurisdictions/us.json';
import { JURISDICTIONS, parseJurisdictions } from '../../jurisdictions';

const files = () => structuredClone({ 'ch.json': ch, 'eu.json': eu, 'uk.json': uk, 'us.json': us });

describe('jurisdiction storage sites', () => {
  it('every jurisdiction names a primary and a disaster-recovery site inside its own regions', () => {
    for (const j of Object.values(JURISDICTIONS)) {
      expect(j.regions).toContain(j.sites.primary.region);
      expect(j.regions).toContain(j.sites.dr.region);
      expect(j.sites.dr.name).not.toBe(j.sites.primary.name);
      for (const other of Object.values(JURISDICTIONS)) {
        if (other.id !== j.id) expect(other.regions.filter((r) => j.regions.includes(r))).toEqual([]);
      }
    }
  });

  it("refuses at load a DR site in another jurisdiction's region, naming the file, the site and the owner", () => {
    const changed = files();
    changed['eu.json'].sites.dr = { name: 'eu-virginia', region: 'us-east-1', location: 'Ashburn, United States' };
    expect(() => parseJurisdictions(changed)).toThrow(
      /jurisdictions\/eu\.json: invalid storage sites\n.*sites\.dr: eu-virginia is in region us-east-1, a region of jurisdiction us: a disaster-recovery site must be inside its jurisdiction/,
    );
  });

  it('refuses a site outside every listed region, two sites in one place, and a region two jurisdictions list', () => {
    const unlisted = files();
    unlisted['ch.json'].sites.dr.region = 'ap-south-1';
    expect(() => parseJurisdictions(unlisted)).toThrow(
      /ch\.json.*\n.*sites\.dr: ch-geneva is in region ap-south-1, not one of ch's regions/,
    );

    const together = files();
    together['uk.json'].sites.dr.location = together['uk.json'].sites.primary.location;
    expect(() => parseJurisdictions(together)).toThrow(
      /uk\.json.*\n.*both in London, United Kingdom: a disaster would take both/,
    );

    const shared = files();
    shared['uk.json'].regions.push('eu-west-3');
    expect(() => parseJurisdictions(shared)).toThrow(/regions: eu-west-3 also listed by jurisdiction (eu|uk)/);
  });

  it('loads the shipped files unchanged', () => {
    expect(Object.keys(parseJurisdictions(files())).sort()).toEqual(['ch', 'eu', 'uk', 'us']);
  });
});
