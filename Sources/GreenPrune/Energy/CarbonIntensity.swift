import Foundation

/// Carbon intensity of a country's electricity, in g CO2eq per kWh, to turn energy into emissions.
///
/// Source: Ember, "Yearly Electricity Data" (2024 release, ember-climate.org/data), life-cycle
/// emissions of electricity generation, year 2023 (2022 where 2023 was not yet published: IDN,
/// ISL, ISR, MYS, SAU, UKR), as republished by Our World in Data ("Carbon intensity of electricity
/// generation"); rounded to whole grams. The same series CodeCarbon uses for its country mix.
/// Unknown countries get the world average CodeCarbon uses, 475 g/kWh.
public struct CarbonIntensity: Codable, Equatable, Sendable {
    /// g CO2eq per kWh.
    public var gramsPerKWh: Double
    /// ISO 3166-1 alpha-3 code, or "" when none was given.
    public var countryISO: String
    public var countryName: String
    /// Where the figure comes from, for energy.json.
    public var source: String

    enum CodingKeys: String, CodingKey {
        case gramsPerKWh = "g_per_kwh", countryISO = "country_iso_code", countryName = "country_name", source
    }

    public static let worldAverage = 475.0
    public static let tableSource = "Ember Yearly Electricity Data 2024 release (year 2023) via Our World in Data"

    /// (ISO3, name, g CO2eq/kWh).
    public static let table: [(iso: String, name: String, grams: Double)] = [
        ("ARG", "Argentina", 354), ("AUS", "Australia", 549), ("AUT", "Austria", 111),
        ("BEL", "Belgium", 138), ("BGD", "Bangladesh", 691), ("BGR", "Bulgaria", 335),
        ("BRA", "Brazil", 98), ("CAN", "Canada", 170), ("CHE", "Switzerland", 35),
        ("CHL", "Chile", 291), ("CHN", "China", 582), ("COL", "Colombia", 260),
        ("CZE", "Czechia", 449), ("DEU", "Germany", 381), ("DNK", "Denmark", 152),
        ("EGY", "Egypt", 570), ("ESP", "Spain", 174), ("EST", "Estonia", 416),
        ("FIN", "Finland", 79), ("FRA", "France", 56), ("GBR", "United Kingdom", 238),
        ("GRC", "Greece", 336), ("HUN", "Hungary", 204), ("IDN", "Indonesia", 676),
        ("IND", "India", 713), ("IRL", "Ireland", 291), ("IRN", "Iran", 655),
        ("ISL", "Iceland", 28), ("ISR", "Israel", 583), ("ITA", "Italy", 331),
        ("JPN", "Japan", 485), ("KAZ", "Kazakhstan", 821), ("KOR", "South Korea", 431),
        ("LTU", "Lithuania", 160), ("MAR", "Morocco", 630), ("MEX", "Mexico", 507),
        ("MYS", "Malaysia", 606), ("NGA", "Nigeria", 523), ("NLD", "Netherlands", 268),
        ("NOR", "Norway", 30), ("NZL", "New Zealand", 113), ("PAK", "Pakistan", 441),
        ("PHL", "Philippines", 611), ("POL", "Poland", 662), ("PRT", "Portugal", 166),
        ("ROU", "Romania", 241), ("RUS", "Russia", 441), ("SAU", "Saudi Arabia", 707),
        ("SGP", "Singapore", 471), ("SVK", "Slovakia", 117), ("SVN", "Slovenia", 231),
        ("SWE", "Sweden", 41), ("THA", "Thailand", 550), ("TUR", "Turkey", 465),
        ("TWN", "Taiwan", 642), ("UKR", "Ukraine", 260), ("USA", "United States", 369),
        ("VNM", "Vietnam", 475), ("ZAF", "South Africa", 708),
    ]

    public init(gramsPerKWh: Double, countryISO: String, countryName: String, source: String) {
        self.gramsPerKWh = gramsPerKWh
        self.countryISO = countryISO
        self.countryName = countryName
        self.source = source
    }

    /// The intensity for `country` (ISO3, any case), or `override` g/kWh when given.
    /// A country missing from the table gets the world average, and the source says so.
    public static func resolve(country: String?, override: Double? = nil) -> CarbonIntensity {
        let iso = (country ?? "").uppercased()
        let row = table.first { $0.iso == iso }
        let name = row?.name ?? ""
        if let g = override {
            return CarbonIntensity(gramsPerKWh: g, countryISO: iso, countryName: name, source: "--carbon-intensity")
        }
        if let r = row {
            return CarbonIntensity(gramsPerKWh: r.grams, countryISO: iso, countryName: name, source: tableSource)
        }
        let why = iso.isEmpty ? "no --country given" : "\(iso) not in the table"
        return CarbonIntensity(gramsPerKWh: worldAverage, countryISO: iso, countryName: "",
                               source: "world average 475 g/kWh (\(why))")
    }

    /// kg CO2eq for `kWh`.
    public func kilograms(forKWh kWh: Double) -> Double { kWh * gramsPerKWh / 1000 }
}
