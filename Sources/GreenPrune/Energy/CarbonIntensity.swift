import Foundation

/// Carbon intensity of a country's electricity, in g CO2eq per kWh, to turn energy into emissions.
///
/// The table is CodeCarbon 3.3.2's (`codecarbon/data/private_infra/global_energy_mix.json`,
/// each country's `carbon_intensity`, which CodeCarbon uses as is for private infrastructure):
/// Ember / Our World in Data life-cycle intensity of electricity generation, mostly year 2023,
/// with CodeCarbon's three decimals, so an emissions.csv row here and CodeCarbon's for the same
/// energy and country agree. A country CodeCarbon has no row for gets its world average, 475 g/kWh.
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
    public static let tableSource = "CodeCarbon 3.3.2 global_energy_mix.json (Ember / Our World in Data)"

    /// (ISO3, name, g CO2eq/kWh), sorted by code.
    public static let table: [(iso: String, name: String, grams: Double)] = [
        ("ABW", "Aruba", 561.224), ("AFG", "Afghanistan", 132.53), ("AGO", "Angola", 174.734),
        ("ALB", "Albania", 24.286), ("ARE", "United Arab Emirates", 561.135), ("ARG", "Argentina", 354.103),
        ("ARM", "Armenia", 264.538), ("ASM", "American Samoa", 611.111),
        ("ATG", "Antigua and Barbuda", 611.111), ("AUS", "Australia", 548.692), ("AUT", "Austria", 110.812),
        ("AZE", "Azerbaijan", 671.389), ("BDI", "Burundi", 250.0), ("BEL", "Belgium", 138.107),
        ("BEN", "Benin", 584.071), ("BFA", "Burkina Faso", 467.533), ("BGD", "Bangladesh", 691.411),
        ("BGR", "Bulgaria", 335.334), ("BHR", "Bahrain", 904.615), ("BHS", "Bahamas", 660.099),
        ("BIH", "Bosnia and Herzegovina", 600.0), ("BLR", "Belarus", 441.74), ("BLZ", "Belize", 225.806),
        ("BMU", "Bermuda", 650.794), ("BOL", "Bolivia", 531.687), ("BRA", "Brazil", 98.348),
        ("BRB", "Barbados", 605.505), ("BRN", "Brunei", 893.913), ("BTN", "Bhutan", 23.333),
        ("BWA", "Botswana", 847.909), ("CAF", "Central African Republic", 0.0), ("CAN", "Canada", 170.043),
        ("CHE", "Switzerland", 34.843), ("CHL", "Chile", 291.113), ("CHN", "China", 582.317),
        ("CIV", "Cote d'Ivoire", 393.885), ("CMR", "Cameroon", 305.419),
        ("COD", "Democratic Republic of Congo", 24.457), ("COG", "Congo", 700.0),
        ("COK", "Cook Islands", 250.0), ("COL", "Colombia", 259.511), ("COM", "Comoros", 642.857),
        ("CPV", "Cape Verde", 558.14), ("CRI", "Costa Rica", 53.378), ("CUB", "Cuba", 637.61),
        ("CYM", "Cayman Islands", 642.857), ("CYP", "Cyprus", 534.323), ("CZE", "Czechia", 449.724),
        ("DEU", "Germany", 380.95), ("DJI", "Djibouti", 692.308), ("DMA", "Dominica", 529.412),
        ("DNK", "Denmark", 151.65), ("DOM", "Dominican Republic", 580.78), ("DZA", "Algeria", 634.611),
        ("ECU", "Ecuador", 150.224), ("EGY", "Egypt", 570.306), ("ERI", "Eritrea", 631.579),
        ("ESH", "Western Sahara", 666.667), ("ESP", "Spain", 174.05), ("EST", "Estonia", 416.667),
        ("ETH", "Ethiopia", 24.643), ("FIN", "Finland", 79.158), ("FJI", "Fiji", 288.462),
        ("FLK", "Falkland Islands", 500.0), ("FRA", "France", 56.039), ("FRO", "Faroe Islands", 404.762),
        ("GAB", "Gabon", 491.597), ("GBR", "United Kingdom", 237.589), ("GEO", "Georgia", 167.594),
        ("GHA", "Ghana", 484.0), ("GIB", "Gibraltar", 600.0), ("GIN", "Guinea", 236.842),
        ("GLP", "Guadeloupe", 500.0), ("GMB", "Gambia", 666.667), ("GNB", "Guinea-Bissau", 625.0),
        ("GNQ", "Equatorial Guinea", 591.837), ("GRC", "Greece", 336.574), ("GRD", "Grenada", 640.0),
        ("GRL", "Greenland", 178.571), ("GTM", "Guatemala", 328.268), ("GUF", "French Guiana", 217.822),
        ("GUM", "Guam", 622.857), ("GUY", "Guyana", 640.351), ("HKG", "Hong Kong", 699.499),
        ("HND", "Honduras", 282.265), ("HRV", "Croatia", 204.962), ("HTI", "Haiti", 567.308),
        ("HUN", "Hungary", 204.19), ("IDN", "Indonesia", 675.931), ("IND", "India", 713.441),
        ("IRL", "Ireland", 290.805), ("IRN", "Iran", 655.125), ("IRQ", "Iraq", 688.814),
        ("ISL", "Iceland", 27.68), ("ISR", "Israel", 582.927), ("ITA", "Italy", 330.718),
        ("JAM", "Jamaica", 555.556), ("JOR", "Jordan", 540.924), ("JPN", "Japan", 485.392),
        ("KAZ", "Kazakhstan", 821.391), ("KEN", "Kenya", 70.492), ("KGZ", "Kyrgyzstan", 147.292),
        ("KHM", "Cambodia", 417.707), ("KIR", "Kiribati", 666.667), ("KNA", "Saint Kitts and Nevis", 636.364),
        ("KOR", "South Korea", 430.567), ("KWT", "Kuwait", 649.163), ("LAO", "Laos", 265.506),
        ("LBN", "Lebanon", 599.005), ("LBR", "Liberia", 227.848), ("LBY", "Libya", 818.692),
        ("LCA", "Saint Lucia", 666.667), ("LKA", "Sri Lanka", 509.781), ("LSO", "Lesotho", 20.0),
        ("LTU", "Lithuania", 160.072), ("LUX", "Luxembourg", 105.263), ("LVA", "Latvia", 123.2),
        ("MAC", "Macao", 448.98), ("MAR", "Morocco", 630.014), ("MDA", "Moldova", 643.464),
        ("MDG", "Madagascar", 436.441), ("MDV", "Maldives", 611.765), ("MEX", "Mexico", 507.245),
        ("MKD", "North Macedonia", 565.345), ("MLI", "Mali", 408.0), ("MLT", "Malta", 459.144),
        ("MMR", "Myanmar", 398.898), ("MNE", "Montenegro", 417.073), ("MNG", "Mongolia", 775.309),
        ("MOZ", "Mozambique", 135.647), ("MRT", "Mauritania", 464.706), ("MSR", "Montserrat", 1000.0),
        ("MTQ", "Martinique", 523.179), ("MUS", "Mauritius", 632.479), ("MWI", "Malawi", 66.667),
        ("MYS", "Malaysia", 605.831), ("NAM", "Namibia", 59.259), ("NCL", "New Caledonia", 660.584),
        ("NER", "Niger", 670.886), ("NGA", "Nigeria", 523.247), ("NIC", "Nicaragua", 265.116),
        ("NLD", "Netherlands", 267.622), ("NOR", "Norway", 30.08), ("NPL", "Nepal", 24.44),
        ("NRU", "Nauru", 750.0), ("NZL", "New Zealand", 112.758), ("OMN", "Oman", 564.635),
        ("PAK", "Pakistan", 440.608), ("PAN", "Panama", 161.677), ("PER", "Peru", 266.478),
        ("PHL", "Philippines", 610.688), ("PNG", "Papua New Guinea", 507.246), ("POL", "Poland", 661.926),
        ("PRI", "Puerto Rico", 678.738), ("PRK", "North Korea", 389.587), ("PRT", "Portugal", 165.553),
        ("PRY", "Paraguay", 23.755), ("PSE", "Palestine", 516.129), ("PYF", "French Polynesia", 442.857),
        ("QAT", "Qatar", 602.5), ("REU", "Reunion", 572.816), ("ROU", "Romania", 240.583),
        ("RUS", "Russia", 441.039), ("RWA", "Rwanda", 316.327), ("SAU", "Saudi Arabia", 706.791),
        ("SDN", "Sudan", 263.158), ("SEN", "Senegal", 511.598), ("SGP", "Singapore", 470.783),
        ("SHN", "Saint Helena", 1000.0), ("SLB", "Solomon Islands", 700.0), ("SLE", "Sierra Leone", 50.0),
        ("SLV", "El Salvador", 271.468), ("SOM", "Somalia", 578.947),
        ("SPM", "Saint Pierre and Miquelon", 600.0), ("SRB", "Serbia", 636.062),
        ("SSD", "South Sudan", 629.032), ("STP", "Sao Tome and Principe", 642.857),
        ("SUR", "Suriname", 349.282), ("SVK", "Slovakia", 116.774), ("SVN", "Slovenia", 231.275),
        ("SWE", "Sweden", 40.695), ("SWZ", "Eswatini", 172.414), ("SYC", "Seychelles", 564.516),
        ("SYR", "Syria", 701.661), ("TCA", "Turks and Caicos Islands", 653.846), ("TCD", "Chad", 628.571),
        ("TGO", "Togo", 443.182), ("THA", "Thailand", 549.583), ("TJK", "Tajikistan", 116.858),
        ("TKM", "Turkmenistan", 1306.025), ("TLS", "East Timor", 666.667), ("TON", "Tonga", 625.0),
        ("TTO", "Trinidad and Tobago", 681.529), ("TUN", "Tunisia", 563.956), ("TUR", "Turkey", 464.586),
        ("TWN", "Taiwan", 642.378), ("TZA", "Tanzania", 339.246), ("UGA", "Uganda", 44.527),
        ("UKR", "Ukraine", 259.693), ("URY", "Uruguay", 128.788), ("USA", "United States", 369.473),
        ("UZB", "Uzbekistan", 1167.603), ("VCT", "Saint Vincent and the Grenadines", 529.412),
        ("VEN", "Venezuela", 185.802), ("VGB", "British Virgin Islands", 647.059),
        ("VIR", "United States Virgin Islands", 632.353), ("VNM", "Vietnam", 475.449),
        ("VUT", "Vanuatu", 571.429), ("WSM", "Samoa", 473.684), ("YEM", "Yemen", 566.102),
        ("ZAF", "South Africa", 707.686), ("ZMB", "Zambia", 111.967), ("ZWE", "Zimbabwe", 297.872),
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
