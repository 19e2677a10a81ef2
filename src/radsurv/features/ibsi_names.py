"""IBSI feature tags of both engines' features, so that their tables line up.

Every feature that IBSI chapter 1 defines has a tag (``morph_volume``, ``stat_mean``,
``cm_joint_max_3D_avg``; the tags of the IBSI reference values). pyradiomics names its
features ``<image type>_<class>_<feature>`` (``original_shape_MeshVolume``); pictologics
names them ``<feature>_<IBSI code>`` (``volume_RNU0``). radsurv writes pictologics'
features as ``<image type>_<IBSI tag>`` (``original_morph_volume``: the tag's prefix is
the feature class, as pyradiomics' class is), and :func:`ibsi_tag` gives the IBSI tag of
a column of either engine, so the two tables can be compared feature by feature.

The texture tags carry the aggregation over directions: ``_3D_avg`` (features per
direction, then averaged: pyradiomics' default) or ``_3D_comb`` (one matrix merged over
the directions: pictologics, and pyradiomics with ``weightingNorm: no_weighting``).
GLSZM, GLDZM, NGTDM and NGLDM have one 3D matrix (``_3D``). Standard library only.
"""

from __future__ import annotations

#: Texture families whose features depend on how the directions are combined.
DIRECTIONAL = ("cm", "rlm")
#: Tag suffix of each aggregation for the directional families.
AGGREGATION_SUFFIX = {"averaged": "_3D_avg", "merged": "_3D_comb"}

_MORPH = {
    "RNU0": "volume", "YEKZ": "vol_approx", "C0JK": "area_mesh", "2PR5": "av", "SKGS": "comp_1",
    "BQWJ": "comp_2", "KRCK": "sph_dispr", "QCFX": "sphericity", "25C7": "asphericity", "KLMA": "com",
    "L0JK": "diam", "TDIC": "pca_maj_axis", "P9VJ": "pca_min_axis", "7J51": "pca_least_axis",
    "Q3CK": "pca_elongation", "N17B": "pca_flatness", "PBX1": "vol_dens_aabb", "R59B": "area_dens_aabb",
    "ZH1A": "vol_dens_ombb", "IQYR": "area_dens_ombb", "6BDE": "vol_dens_aee", "RDD2": "area_dens_aee",
    "SWZ1": "vol_dens_mvee", "BRI8": "area_dens_mvee", "R3ER": "vol_dens_conv_hull",
    "7T7F": "area_dens_conv_hull", "99N0": "integ_int", "N365": "moran_i", "NPT7": "geary_c",
}
_LOC = {"VJGA": "peak_loc", "0F91": "peak_glob"}
_STAT = {
    "Q4LE": "mean", "ECT3": "var", "KE2A": "skew", "IPH6": "kurt", "Y12H": "median", "1GSF": "min",
    "QG58": "p10", "8DWT": "p90", "84IY": "max", "SALO": "iqr", "2OJQ": "range", "4FUA": "mad",
    "1128": "rmad", "N72L": "medad", "7TET": "cov", "9S40": "qcod", "N8CA": "energy", "5ZWQ": "rms",
}
_IH = {
    "X6K6": "mean", "CH89": "var", "88K1": "skew", "C3I7": "kurt", "WIFQ": "median", "1PR8": "min",
    "1PR": "p10", "GPMT": "p90", "3NCY": "max", "AMMC": "mode", "WR0O": "iqr", "5Z3W": "range",
    "D2ZX": "mad", "WRZB": "rmad", "4RNL": "medad", "CWYJ": "cov", "SLWD": "qcod", "TLU2": "entropy",
    "BJ5W": "uniformity", "12CE": "max_grad", "8E6O": "max_grad_g", "VQB3": "min_grad", "RHQZ": "min_grad_g",
}
_IVH = {"BC2M_10": "v10", "BC2M_90": "v90", "GBPN_10": "i10", "GBPN_90": "i90", "DDTU": "diff_v10_v90",
        "CNV2": "diff_i10_i90", "9CMM": "auc"}
_CM = {
    "GYBY": "joint_max", "60VM": "joint_avg", "UR99": "joint_var", "TU9B": "joint_entr", "TF7R": "diff_avg",
    "D3YU": "diff_var", "NTRS": "diff_entr", "ZGXS": "sum_avg", "OEEB": "sum_var", "P6QZ": "sum_entr",
    "8ZQL": "energy", "ACUI": "contrast", "8S9J": "dissimilarity", "IB1Z": "inv_diff", "NDRX": "inv_diff_norm",
    "WF0Z": "inv_diff_mom", "1QCO": "inv_diff_mom_norm", "E8JP": "inv_var", "NI2N": "corr",
    "QWB0": "auto_corr", "DG8W": "clust_tend", "7NFM": "clust_shade", "AE86": "clust_prom",
    "R8DG": "info_corr1", "JN9H": "info_corr2",
}
_RLM = {
    "22OV": "sre", "W4KF": "lre", "V3SW": "lgre", "G3QZ": "hgre", "HTZT": "srlge", "GD3A": "srhge",
    "IVPO": "lrlge", "3KUM": "lrhge", "R5YN": "glnu", "OVBL": "glnu_norm", "W92Y": "rlnu",
    "IC23": "rlnu_norm", "9ZK5": "r_perc", "8CE5": "gl_var", "SXLW": "rl_var", "HJ9O": "rl_entr",
}
_SZM = {
    "P001": "sze", "48P8": "lze", "XMSY": "lgze", "5GN9": "hgze", "5RAI": "szlge", "HW1V": "szhge",
    "YH51": "lzlge", "J17V": "lzhge", "JNSA": "glnu", "Y1RO": "glnu_norm", "4JP3": "zsnu",
    "VB3A": "zsnu_norm", "P30P": "z_perc", "BYLV": "gl_var", "3NSA": "zs_var", "GU8N": "zs_entr",
}
_DZM = {
    "0GBI": "sde", "MB4I": "lde", "S1RA": "lgze", "K26C": "hgze", "RUVG": "sdlge", "DKNJ": "sdhge",
    "A7WM": "ldlge", "KLTH": "ldhge", "VFT7": "glnu", "7HP3": "glnu_norm", "V294": "zdnu",
    "IATH": "zdnu_norm", "VIWW": "z_perc", "QK93": "gl_var", "7WT1": "zd_var", "GBDU": "zd_entr",
}
_NGT = {"QCDE": "coarseness", "65HE": "contrast", "NQ30": "busyness", "HDEZ": "complexity", "1X9X": "strength"}
_NGL = {
    "SODN": "lde", "IMOQ": "hde", "TL9H": "lgce", "OAE7": "hgce", "EQ3F": "ldlge", "JA6D": "ldhge",
    "NBZI": "hdlge", "9QMG": "hdhge", "FP8K": "glnu", "5SPA": "glnu_norm", "Z87G": "dcnu",
    "OKJI": "dcnu_norm", "6XV8": "dc_perc", "1PFV": "gl_var", "DNX2": "dc_var", "FCBV": "dc_entr",
    "CAS9": "dc_energy",
}
_FAMILIES = {"morph": _MORPH, "loc": _LOC, "stat": _STAT, "ih": _IH, "ivh": _IVH, "cm": _CM, "rlm": _RLM,
             "szm": _SZM, "dzm": _DZM, "ngt": _NGT, "ngl": _NGL}
_TEXTURE_3D = ("szm", "dzm", "ngt", "ngl")

#: IBSI code (as pictologics ends its feature names) -> (IBSI family prefix, feature part of the tag).
PICTOLOGICS_CODES: dict[str, tuple[str, str]] = {
    code: (family, feature) for family, table in _FAMILIES.items() for code, feature in table.items()
}


def _texture_suffix(family: str, aggregation: str) -> str:
    if family in DIRECTIONAL:
        return AGGREGATION_SUFFIX[aggregation]
    return "_3D" if family in _TEXTURE_3D else ""


def pictologics_tag(key: str, aggregation: str = "merged") -> str | None:
    """IBSI tag of a pictologics feature key (``joint_maximum_GYBY`` -> ``cm_joint_max_3D_comb``);
    ``None`` for a key without a known IBSI code."""
    parts = key.split("_")
    for code in ("_".join(parts[-2:]), parts[-1]):  # IVH keys end in <code>_<percent>
        if code in PICTOLOGICS_CODES:
            family, feature = PICTOLOGICS_CODES[code]
            return f"{family}_{feature}{_texture_suffix(family, aggregation)}"
    return None


#: pyradiomics class -> {pyradiomics feature: (IBSI family, feature part of the tag)}: the IBSI
#: features pyradiomics computes (its others, e.g. Maximum2DDiameterSlice, have no IBSI tag).
#: Three pyradiomics features equal a second IBSI feature too (Uniformity = NGLDM normalised
#: GLNU, ClusterTendency = GLCM sum variance, DifferenceAverage = dissimilarity): the first is given.
_PYRADIOMICS: dict[str, dict[str, tuple[str, str]]] = {
    "shape": {
        "MeshVolume": ("morph", "volume"), "VoxelVolume": ("morph", "vol_approx"),
        "SurfaceArea": ("morph", "area_mesh"), "SurfaceVolumeRatio": ("morph", "av"),
        "Compactness1": ("morph", "comp_1"), "Compactness2": ("morph", "comp_2"),
        "SphericalDisproportion": ("morph", "sph_dispr"), "Sphericity": ("morph", "sphericity"),
        "Maximum3DDiameter": ("morph", "diam"), "MajorAxisLength": ("morph", "pca_maj_axis"),
        "MinorAxisLength": ("morph", "pca_min_axis"), "LeastAxisLength": ("morph", "pca_least_axis"),
        "Elongation": ("morph", "pca_elongation"), "Flatness": ("morph", "pca_flatness"),
    },
    "firstorder": {
        "Mean": ("stat", "mean"), "Variance": ("stat", "var"), "Skewness": ("stat", "skew"),
        "Kurtosis": ("stat", "kurt"), "Median": ("stat", "median"), "Minimum": ("stat", "min"),
        "10Percentile": ("stat", "p10"), "90Percentile": ("stat", "p90"), "Maximum": ("stat", "max"),
        "InterquartileRange": ("stat", "iqr"), "Range": ("stat", "range"),
        "MeanAbsoluteDeviation": ("stat", "mad"), "RobustMeanAbsoluteDeviation": ("stat", "rmad"),
        "Energy": ("stat", "energy"), "RootMeanSquared": ("stat", "rms"), "Entropy": ("ih", "entropy"),
        "Uniformity": ("ih", "uniformity"),
    },
    "glcm": {
        "MaximumProbability": ("cm", "joint_max"), "JointAverage": ("cm", "joint_avg"),
        "SumSquares": ("cm", "joint_var"), "JointEntropy": ("cm", "joint_entr"),
        "DifferenceAverage": ("cm", "diff_avg"), "DifferenceVariance": ("cm", "diff_var"),
        "DifferenceEntropy": ("cm", "diff_entr"), "SumAverage": ("cm", "sum_avg"), "SumEntropy": ("cm", "sum_entr"),
        "JointEnergy": ("cm", "energy"), "Contrast": ("cm", "contrast"), "Id": ("cm", "inv_diff"),
        "Idn": ("cm", "inv_diff_norm"), "Idm": ("cm", "inv_diff_mom"), "Idmn": ("cm", "inv_diff_mom_norm"),
        "InverseVariance": ("cm", "inv_var"), "Correlation": ("cm", "corr"), "Autocorrelation": ("cm", "auto_corr"),
        "ClusterTendency": ("cm", "clust_tend"), "ClusterShade": ("cm", "clust_shade"),
        "ClusterProminence": ("cm", "clust_prom"), "Imc1": ("cm", "info_corr1"), "Imc2": ("cm", "info_corr2"),
    },
    "glrlm": {
        "ShortRunEmphasis": ("rlm", "sre"), "LongRunEmphasis": ("rlm", "lre"),
        "LowGrayLevelRunEmphasis": ("rlm", "lgre"), "HighGrayLevelRunEmphasis": ("rlm", "hgre"),
        "ShortRunLowGrayLevelEmphasis": ("rlm", "srlge"), "ShortRunHighGrayLevelEmphasis": ("rlm", "srhge"),
        "LongRunLowGrayLevelEmphasis": ("rlm", "lrlge"), "LongRunHighGrayLevelEmphasis": ("rlm", "lrhge"),
        "GrayLevelNonUniformity": ("rlm", "glnu"), "GrayLevelNonUniformityNormalized": ("rlm", "glnu_norm"),
        "RunLengthNonUniformity": ("rlm", "rlnu"), "RunLengthNonUniformityNormalized": ("rlm", "rlnu_norm"),
        "RunPercentage": ("rlm", "r_perc"), "GrayLevelVariance": ("rlm", "gl_var"),
        "RunVariance": ("rlm", "rl_var"), "RunEntropy": ("rlm", "rl_entr"),
    },
    "glszm": {
        "SmallAreaEmphasis": ("szm", "sze"), "LargeAreaEmphasis": ("szm", "lze"),
        "LowGrayLevelZoneEmphasis": ("szm", "lgze"), "HighGrayLevelZoneEmphasis": ("szm", "hgze"),
        "SmallAreaLowGrayLevelEmphasis": ("szm", "szlge"), "SmallAreaHighGrayLevelEmphasis": ("szm", "szhge"),
        "LargeAreaLowGrayLevelEmphasis": ("szm", "lzlge"), "LargeAreaHighGrayLevelEmphasis": ("szm", "lzhge"),
        "GrayLevelNonUniformity": ("szm", "glnu"), "GrayLevelNonUniformityNormalized": ("szm", "glnu_norm"),
        "SizeZoneNonUniformity": ("szm", "zsnu"), "SizeZoneNonUniformityNormalized": ("szm", "zsnu_norm"),
        "ZonePercentage": ("szm", "z_perc"), "GrayLevelVariance": ("szm", "gl_var"),
        "ZoneVariance": ("szm", "zs_var"), "ZoneEntropy": ("szm", "zs_entr"),
    },
    "gldm": {
        "SmallDependenceEmphasis": ("ngl", "lde"), "LargeDependenceEmphasis": ("ngl", "hde"),
        "LowGrayLevelEmphasis": ("ngl", "lgce"), "HighGrayLevelEmphasis": ("ngl", "hgce"),
        "SmallDependenceLowGrayLevelEmphasis": ("ngl", "ldlge"),
        "SmallDependenceHighGrayLevelEmphasis": ("ngl", "ldhge"),
        "LargeDependenceLowGrayLevelEmphasis": ("ngl", "hdlge"),
        "LargeDependenceHighGrayLevelEmphasis": ("ngl", "hdhge"),
        "GrayLevelNonUniformity": ("ngl", "glnu"), "DependenceNonUniformity": ("ngl", "dcnu"),
        "DependenceNonUniformityNormalized": ("ngl", "dcnu_norm"), "GrayLevelVariance": ("ngl", "gl_var"),
        "DependenceVariance": ("ngl", "dc_var"), "DependenceEntropy": ("ngl", "dc_entr"),
    },
    "ngtdm": {
        "Coarseness": ("ngt", "coarseness"), "Contrast": ("ngt", "contrast"), "Busyness": ("ngt", "busyness"),
        "Complexity": ("ngt", "complexity"), "Strength": ("ngt", "strength"),
    },
}


def pyradiomics_tag(name: str, aggregation: str = "averaged") -> str | None:
    """IBSI tag of a pyradiomics feature name (``original_glcm_Idmn`` -> ``cm_inv_diff_mom_norm_3D_avg``);
    ``None`` for a feature IBSI does not define. The image type is not part of the tag."""
    parts = name.split("_")
    if len(parts) < 3:
        return None
    hit = _PYRADIOMICS.get(parts[1], {}).get("_".join(parts[2:]))
    if hit is None:
        return None
    family, feature = hit
    return f"{family}_{feature}{_texture_suffix(family, aggregation)}"


def column(image_type: str, tag: str) -> str:
    """radsurv's column name of an IBSI-tagged feature: ``<image type>_<tag>`` (``original_morph_volume``)."""
    return f"{image_type}_{tag}"


def ibsi_tag(name: str, engine: str, aggregation: str) -> str | None:
    """IBSI tag of a feature column written by ``engine`` (pyradiomics names, or radsurv's
    ``<image type>_<tag>`` columns of pictologics)."""
    if engine == "pyradiomics":
        return pyradiomics_tag(name, aggregation)
    _, _, tag = name.partition("_")
    family = tag.split("_")[0]
    return tag if family in _FAMILIES else None
